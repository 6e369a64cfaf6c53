package producer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/producer"
)

func TestWait(t *testing.T) {
	t.Parallel()
	const load = 9
	sum := &viswals.LoadSummary{Load: load, Read: 4, Published: 3, Rejected: 1}
	at := time.Unix(1, 0)
	for _, tc := range []struct {
		name    string
		records []viswals.LoadRecord
		close   bool
		code    string // "" for success
		msg     string
	}{
		{name: "committed, records out of order", records: []viswals.LoadRecord{
			{ID: load, Tally: viswals.Tally{Received: 3, Inserted: 3}, LastCommit: at.Add(2)},
			{ID: load, Tally: viswals.Tally{Received: 1, Inserted: 1}, LastCommit: at},
			{ID: load, Summary: sum, Tally: viswals.Tally{Received: 1, Inserted: 1}, LastCommit: at},
		}},
		{name: "dead letters", records: []viswals.LoadRecord{
			{ID: load, Summary: sum, Tally: viswals.Tally{Received: 3, Inserted: 2, DeadLettered: 1}},
		}, code: viswals.EINVALID, msg: "1 of 3 rows went to the dead-letter queue"},
		{name: "a message refused for its signature", records: []viswals.LoadRecord{
			{ID: load, Tally: viswals.Tally{Received: 1, Inserted: 1}},
			{ID: load, UnverifiedMessages: 1},
		}, code: viswals.EINVALID, msg: "failed their signature check"},
		{name: "all rows but no summary: times out", records: []viswals.LoadRecord{
			{ID: load, Tally: viswals.Tally{Received: 3, Inserted: 3}},
		}, code: viswals.EUNAVAILABLE, msg: "committed 3 of 3 rows, and the load's summary is not recorded yet"},
		{name: "nothing: times out", code: viswals.EUNAVAILABLE, msg: "without progress (--wait-timeout): the consumers committed 0 of 3 rows"},
		{name: "lost track", close: true, code: viswals.EUNAVAILABLE, msg: "lost track of load 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ch := make(chan viswals.LoadRecord, len(tc.records))
			for _, r := range tc.records {
				ch <- r
			}
			if tc.close {
				close(ch)
			}
			var notes []string
			rec, err := producer.Wait(context.Background(), load, ch, producer.WaitOptions{
				Published: 3, Timeout: 300 * time.Millisecond, Tick: 50 * time.Millisecond,
				Show: func(_ viswals.LoadRecord, note string) { notes = append(notes, note) },
			})
			if tc.code == "" {
				require.NoError(t, err)
				assert.Equal(t, viswals.LoadComplete, rec.State())
				assert.Equal(t, int64(3), rec.Inserted)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tc.code, viswals.ErrorCode(err))
			assert.Contains(t, err.Error(), tc.msg)
			if tc.code == viswals.EUNAVAILABLE && !tc.close {
				assert.Contains(t, notes, "waiting for the consumers", "the wait shows that it waits")
			}
		})
	}
}
