package viswals_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/viswals/viswals"
)

func TestLoadState(t *testing.T) {
	t.Parallel()
	sum := &viswals.LoadSummary{Read: 12, Published: 10, Rejected: 2}
	for _, tc := range []struct {
		name string
		rec  viswals.LoadRecord
		want string
	}{
		{"nothing yet", viswals.LoadRecord{}, viswals.LoadIncomplete},
		{"all rows, summary lost", viswals.LoadRecord{Tally: viswals.Tally{Received: 10, Inserted: 10}}, viswals.LoadIncomplete},
		{"summary, rows on their way", viswals.LoadRecord{Summary: sum, Tally: viswals.Tally{Received: 9, Inserted: 9}}, viswals.LoadIncomplete},
		{"all committed", viswals.LoadRecord{Summary: sum, Tally: viswals.Tally{Received: 10, Inserted: 7, Updated: 2, Unchanged: 1}}, viswals.LoadComplete},
		{"some dead-lettered", viswals.LoadRecord{Summary: sum, Tally: viswals.Tally{Received: 10, Inserted: 9, DeadLettered: 1}}, viswals.LoadDeadLettered},
		{"empty file", viswals.LoadRecord{Summary: &viswals.LoadSummary{}}, viswals.LoadComplete},
	} {
		if got := tc.rec.State(); got != tc.want {
			t.Errorf("%s: State() = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestParseLoadID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1", 1, true},
		{"1764451200000000000", 1764451200000000000, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"9223372036854775808", 0, false},
		{"0", 0, false},
		{"", 0, false},
		{"-5", 0, false},
		{"+5", 0, false},
		{"1e9", 0, false},
		{" 5", 0, false},
		{"5'; DROP TABLE loads;--", 0, false},
		{"١٢", 0, false},
	} {
		got, err := viswals.ParseLoadID(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseLoadID(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && viswals.ErrorCode(err) != viswals.EINVALID {
			t.Errorf("ParseLoadID(%q): code %s, want invalid", tc.in, viswals.ErrorCode(err))
		}
	}
}

func FuzzParseLoadID(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "99999999999999999999", "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := viswals.ParseLoadID(s)
		if err == nil && id < 1 {
			t.Fatalf("ParseLoadID(%q) = %d without an error", s, id)
		}
	})
}

func TestLoadRecordMerge(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(100, 0)
	early := viswals.LoadRecord{ID: 1, Tally: viswals.Tally{Received: 5, Inserted: 5}, FirstCommit: t0, LastCommit: t0}
	late := viswals.LoadRecord{ID: 1, Tally: viswals.Tally{Received: 9, Inserted: 8, DeadLettered: 1}, FirstCommit: t0, LastCommit: t0.Add(time.Second)}
	summary := viswals.LoadRecord{ID: 1, Summary: &viswals.LoadSummary{Load: 1, Published: 9}}
	want := viswals.LoadRecord{ID: 1, Summary: summary.Summary, Tally: late.Tally, FirstCommit: t0, LastCommit: late.LastCommit}
	for _, order := range [][]viswals.LoadRecord{{early, late, summary}, {summary, late, early}, {late, summary, early}} {
		got := order[0].Merge(order[1]).Merge(order[2])
		if !reflect.DeepEqual(got, want) {
			t.Errorf("merged %v, want %v", got, want)
		}
	}
}
