package ingest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
)

// Fakes for pure logic: the real stores are exercised by the end-to-end
// and fault tests.

type fakeStore struct {
	mu       sync.Mutex
	fails    int   // UpsertCounted fails with EUNAVAILABLE this many times first
	poison   int64 // a batch holding this id fails with EINVALID
	calls    int
	upserted []int64
	inserted bool        // what UpsertCounted reports
	onCall   func(n int) // called with the number of calls so far
}

func (s *fakeStore) UpsertCounted(_ context.Context, users []viswals.SealedUser, _ *viswals.Receipt) ([]viswals.SealedUser, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.onCall != nil {
		s.onCall(s.calls)
	}
	if s.fails > 0 {
		s.fails--
		return nil, false, viswals.Errorf(viswals.EUNAVAILABLE, "postgres down")
	}
	for _, u := range users {
		if u.ID == s.poison {
			return nil, false, viswals.Errorf(viswals.EINVALID, "value out of range")
		}
	}
	for _, u := range users {
		s.upserted = append(s.upserted, u.ID)
	}
	return users, s.inserted, nil
}

func (s *fakeStore) RecordSummary(context.Context, viswals.LoadSummary) (viswals.LoadRecord, bool, error) {
	return viswals.LoadRecord{}, true, nil
}

func (s *fakeStore) GetMany(context.Context, []int64) ([]viswals.SealedUser, error) {
	return nil, errors.New("fakeStore keeps no users")
}

type fakeCache struct {
	mu      sync.Mutex
	err     error
	puts    int
	putNews int
	ids     []int64
}

func (c *fakeCache) Put(_ context.Context, users []viswals.SealedUser) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puts++
	return c.record(users)
}

func (c *fakeCache) PutNew(_ context.Context, users []viswals.SealedUser) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putNews++
	return c.record(users)
}

func (c *fakeCache) record(users []viswals.SealedUser) error {
	if c.err != nil {
		return c.err
	}
	for _, u := range users {
		c.ids = append(c.ids, u.ID)
	}
	return nil
}

type fakeSealer struct{}

func (fakeSealer) Seal(r viswals.Record) (viswals.SealedUser, error) {
	return viswals.SealedUser{ID: r.ID, FirstName: r.FirstName, EmailSealed: "sealed", Version: r.Version}, nil
}

func rec(id int64, email string) viswals.Record {
	return viswals.Record{User: viswals.User{ID: id, Email: email, CreatedAt: time.UnixMilli(1).UTC()}, Version: viswals.Version{Load: 1, Line: id + 1}}
}

// testNow is the clock of the ingesters of these tests.
var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// ahead gives r a version whose load is d after testNow.
func ahead(r viswals.Record, d time.Duration) viswals.Record {
	r.Version.Load = testNow.Add(d).UnixNano()
	return r
}

func fastOptions() Options {
	return Options{RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond, Now: func() time.Time { return testNow }}
}

func TestIngest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		store        *fakeStore
		recs         []viswals.Record
		wantStored   []int64
		wantRejected []int64
	}{
		{name: "all good", store: &fakeStore{}, recs: []viswals.Record{rec(1, "a@b"), rec(2, "c@d")}, wantStored: []int64{1, 2}},
		{name: "invalid users refused, good ones stored", store: &fakeStore{},
			recs: []viswals.Record{rec(1, "a@b"), rec(2, "no-at"), rec(0, "z@z"), rec(3, "e@f")}, wantStored: []int64{1, 3}, wantRejected: []int64{2, 0}},
		{name: "store down, then up: retried, nothing lost", store: &fakeStore{fails: 3},
			recs: []viswals.Record{rec(1, "a@b")}, wantStored: []int64{1}},
		{name: "versions from the future refused, the rest land", store: &fakeStore{},
			recs:       []viswals.Record{rec(1, "a@b"), ahead(rec(2, "c@d"), 6*time.Minute), ahead(rec(3, "e@f"), 4*time.Minute), ahead(rec(4, "g@h"), 1<<62)},
			wantStored: []int64{1, 3}, wantRejected: []int64{2, 4}},
		{name: "store refuses one user: the rest land", store: &fakeStore{poison: 2},
			recs: []viswals.Record{rec(1, "a@b"), rec(2, "c@d"), rec(3, "e@f")}, wantStored: []int64{1, 3}, wantRejected: []int64{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cache := &fakeCache{}
			in := New(tt.store, cache, fakeSealer{}, fastOptions())
			refused, err := in.Ingest(context.Background(), tt.recs, false)
			require.NoError(t, err)
			assert.Equal(t, tt.wantStored, tt.store.upserted)
			var ids []int64
			for _, r := range refused {
				ids = append(ids, tt.recs[r.Index].ID)
				assert.NotEmpty(t, r.Reason)
			}
			assert.Equal(t, tt.wantRejected, ids)
			assert.Equal(t, tt.wantStored, cache.ids, "the cache gets what was committed")
		})
	}
}

// Users the store inserted as new ids go to the cache's cheaper PutNew;
// any other write needs Put's version check.
func TestIngestCachesInsertedUsersWithPutNew(t *testing.T) {
	t.Parallel()
	for _, inserted := range []bool{true, false} {
		cache := &fakeCache{}
		in := New(&fakeStore{inserted: inserted}, cache, fakeSealer{}, fastOptions())
		_, err := in.Ingest(context.Background(), []viswals.Record{rec(1, "a@b"), rec(2, "c@d")}, false)
		require.NoError(t, err)
		assert.Equal(t, []int64{1, 2}, cache.ids)
		if inserted {
			assert.Equal(t, 1, cache.putNews, "inserted")
			assert.Zero(t, cache.puts, "inserted")
		} else {
			assert.Equal(t, 1, cache.puts, "updated")
			assert.Zero(t, cache.putNews, "updated")
		}
	}
}

func TestIngestStopsRetryingWhenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	store := &fakeStore{fails: 1 << 30, onCall: func(n int) {
		if n == 3 {
			cancel()
		}
	}}
	in := New(store, nil, fakeSealer{}, fastOptions())
	_, err := in.Ingest(ctx, []viswals.Record{rec(1, "a@b")}, false)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, store.upserted)
}

func TestCacheFailureDoesNotStopIngestion(t *testing.T) {
	t.Parallel()
	store := &fakeStore{}
	cache := &fakeCache{err: errors.New("redis down")}
	in := New(store, cache, fakeSealer{}, fastOptions())
	for i := range 3 {
		_, err := in.Ingest(context.Background(), []viswals.Record{rec(int64(i+1), "a@b")}, false)
		require.NoError(t, err)
	}
	assert.Equal(t, []int64{1, 2, 3}, store.upserted)
	assert.Equal(t, 1, cache.puts, "after a failure the breaker skips the cache for a while")
}

type failingSealer struct{}

func (failingSealer) Seal(viswals.Record) (viswals.SealedUser, error) {
	return viswals.SealedUser{}, errors.New("entropy source failed")
}

// Sealing fails only when the system does (its randomness), never
// because of a record: the batch is neither stored nor refused, and the
// caller hands it back to be delivered again.
func TestSealFailureIsNotARefusal(t *testing.T) {
	t.Parallel()
	store := &fakeStore{}
	refused, err := New(store, nil, failingSealer{}, fastOptions()).Ingest(context.Background(), []viswals.Record{rec(1, "a@b")}, false)
	require.Error(t, err)
	assert.Empty(t, refused)
	assert.Empty(t, store.upserted)
}
