package ingest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/viswals/viswals"
)

func TestRecentWrites(t *testing.T) {
	t.Parallel()
	users := func(ids ...int64) []viswals.SealedUser {
		var us []viswals.SealedUser
		for _, id := range ids {
			us = append(us, viswals.SealedUser{ID: id})
		}
		return us
	}
	var r recentWrites
	t0 := time.Unix(1000, 0)
	r.add(t0, users(1, 2))
	r.add(t0.Add(recentWindow/2), users(3))
	r.add(t0.Add(recentWindow), users(4, 5))
	assert.Equal(t, []int64{3, 4, 5}, r.take(t0.Add(recentWindow+time.Second)), "writes older than the window are gone")
	assert.Empty(t, r.take(t0.Add(recentWindow+time.Second)), "take forgets")

	r.add(t0, make([]viswals.SealedUser, maxStale))
	r.add(t0, users(7))
	assert.Equal(t, []int64{7}, r.take(t0), "at most maxStale ids, the oldest dropped")
}
