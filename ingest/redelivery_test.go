package ingest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/wait"
)

// versionedStore keeps the greatest version per id, as the real upsert
// does, and reports as changed only the users it wrote. With
// failAfterCommit set, its next write commits and then fails, as a write
// whose connection dies before the commit is acknowledged; with getErr
// set, GetMany fails.
type versionedStore struct {
	mu              sync.Mutex
	users           map[int64]viswals.SealedUser
	failAfterCommit bool
	getErr          error
}

func newVersionedStore() *versionedStore {
	return &versionedStore{users: map[int64]viswals.SealedUser{}}
}

func (s *versionedStore) UpsertCounted(_ context.Context, users []viswals.SealedUser, _ *viswals.Receipt) ([]viswals.SealedUser, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var changed []viswals.SealedUser
	inserted := true
	for _, u := range users {
		cur, ok := s.users[u.ID]
		inserted = inserted && !ok
		if ok && !cur.Version.Less(u.Version) {
			continue
		}
		s.users[u.ID] = u
		changed = append(changed, u)
	}
	if s.failAfterCommit {
		s.failAfterCommit = false
		return nil, false, viswals.Errorf(viswals.EUNAVAILABLE, "connection lost during commit")
	}
	return changed, inserted, nil
}

func (s *versionedStore) RecordSummary(context.Context, viswals.LoadSummary) (viswals.LoadRecord, bool, error) {
	return viswals.LoadRecord{}, true, nil
}

func (s *versionedStore) GetMany(_ context.Context, ids []int64) ([]viswals.SealedUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.getErr != nil {
		return nil, s.getErr
	}
	var out []viswals.SealedUser
	for _, id := range ids {
		if u, ok := s.users[id]; ok {
			out = append(out, u)
		}
	}
	return out, nil
}

// deletingCache is a cache that records what it is told, deletes included.
type deletingCache struct {
	fakeCache
	deleted    []int64
	deletedAll int
}

func (c *deletingCache) Delete(_ context.Context, ids []int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.deleted = append(c.deleted, ids...)
	return nil
}

func (c *deletingCache) DeleteAll(context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	c.deletedAll++
	return 0, nil
}

// versionedCache keeps one user per id, writing a user only over an older
// version, as the real cache does.
type versionedCache struct {
	mu    sync.Mutex
	users map[int64]viswals.SealedUser
}

func (c *versionedCache) Put(_ context.Context, users []viswals.SealedUser) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range users {
		if cur, ok := c.users[u.ID]; !ok || cur.Version.Less(u.Version) {
			c.users[u.ID] = u
		}
	}
	return nil
}

func (c *versionedCache) PutNew(_ context.Context, users []viswals.SealedUser) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range users {
		if _, ok := c.users[u.ID]; !ok {
			c.users[u.ID] = u
		}
	}
	return nil
}

func (c *versionedCache) Delete(_ context.Context, ids []int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		delete(c.users, id)
	}
	return nil
}

func (c *versionedCache) DeleteAll(context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.users)
	clear(c.users)
	return n, nil
}

// assertCurrentOrAbsent checks the promise of the cache: every user it
// holds is the version the store holds.
func assertCurrentOrAbsent(t *testing.T, store *versionedStore, cache *versionedCache) {
	t.Helper()
	for id, cached := range cache.users {
		assert.Equal(t, store.users[id].Version, cached.Version, "user %d is stale in the cache", id)
	}
}

func version(r viswals.Record, load int64) viswals.Record {
	r.Version.Load = load
	return r
}

// The cache is written after the commit. When a consumer dies in between,
// or a write commits but its answer is lost (the connection dies first)
// and the retry then finds nothing to change, the cache would keep an
// older version of the batch's users for its whole TTL. Such batches
// refresh the entries of the users they did not change from the store.
func TestUncertainCommitLeavesNoStaleCacheEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		failAfterCommit bool // the write of version 2 commits, then fails
		seenBefore      bool // version 2 is ingested twice, the second time as seen before
		getErr          error
	}{
		{name: "commit acknowledged late: the retry changes nothing", failAfterCommit: true},
		{name: "redelivered after the commit", seenBefore: true},
		{name: "store unreadable for the refresh: entries deleted", failAfterCommit: true, getErr: errors.New("postgres down again")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := newVersionedStore()
			cache := &versionedCache{users: map[int64]viswals.SealedUser{}}
			in := New(store, cache, fakeSealer{}, fastOptions())
			v1 := []viswals.Record{version(rec(1, "a@b"), 1), version(rec(2, "c@d"), 1)}
			v2 := []viswals.Record{version(rec(1, "a@b"), 2), version(rec(2, "c@d"), 2), version(rec(3, "e@f"), 2)}
			_, err := in.Ingest(context.Background(), v1, false)
			require.NoError(t, err)
			require.Len(t, cache.users, 2)

			if tt.seenBefore {
				// The first ingestion commits; its cache write is lost
				// with the process (simulated by putting v1 back).
				_, err = in.Ingest(context.Background(), v2, false)
				require.NoError(t, err)
				require.NoError(t, cache.Delete(context.Background(), []int64{1, 2, 3}))
				sealed := func(r viswals.Record) viswals.SealedUser { s, _ := fakeSealer{}.Seal(r); return s }
				require.NoError(t, cache.Put(context.Background(), []viswals.SealedUser{sealed(v1[0]), sealed(v1[1])}))
			}
			store.failAfterCommit = tt.failAfterCommit
			store.getErr = tt.getErr
			_, err = in.Ingest(context.Background(), v2, tt.seenBefore)
			require.NoError(t, err)

			assertCurrentOrAbsent(t, store, cache)
			if tt.getErr == nil {
				assert.Len(t, cache.users, 3, "refreshed from the store rather than dropped")
			}
		})
	}
}

// A cache without Delete is not invalidated when the store cannot be read.
func TestRedeliveryWithPutOnlyCache(t *testing.T) {
	t.Parallel()
	store := newVersionedStore()
	store.getErr = errors.New("postgres down")
	in := New(store, &fakeCache{}, fakeSealer{}, fastOptions())
	_, err := in.Ingest(context.Background(), []viswals.Record{rec(1, "a@b")}, true)
	require.NoError(t, err)
	_, err = in.Ingest(context.Background(), []viswals.Record{rec(1, "a@b")}, true)
	require.NoError(t, err)
}

// Writes the cache missed while it was unreachable (failed, or skipped by
// the breaker) may have left older versions in it, if it comes back with
// its data: their entries are deleted before the next write.
func TestCacheOutageDropsMissedEntriesOnRecovery(t *testing.T) {
	t.Parallel()
	store := newVersionedStore()
	cache := &deletingCache{fakeCache: fakeCache{err: errors.New("redis down")}}
	opts := fastOptions()
	opts.CacheCooldown = time.Hour
	in := New(store, cache, fakeSealer{}, opts)
	ingest := func(ids ...int64) {
		t.Helper()
		var recs []viswals.Record
		for _, id := range ids {
			recs = append(recs, rec(id, "a@b"))
		}
		_, err := in.Ingest(context.Background(), recs, false)
		require.NoError(t, err)
	}

	ingest(1, 2) // the write fails
	ingest(3)    // the breaker skips the write
	assert.Equal(t, 1, cache.putNews, "new ids, one write tried")

	cache.mu.Lock()
	cache.err = nil
	cache.mu.Unlock()
	in.cacheBreaker.Reset() // as after the cooldown
	ingest(4)
	slices.Sort(cache.deleted)
	assert.Equal(t, []int64{1, 2, 3}, cache.deleted)
	assert.Equal(t, []int64{4}, cache.ids)

	ingest(5) // nothing left to drop
	assert.Len(t, cache.deleted, 3)

	// Past the bound it forgets the ids and drops the whole cache.
	in.stale.setOverflow()
	ingest(6)
	assert.Equal(t, 1, cache.deletedAll)
	assert.Equal(t, []int64{4, 5, 6}, cache.ids)
}

// The cache may come back after the last write of a load: the entries it
// missed are dropped all the same, by a retry in the background.
func TestCacheOutageDropsMissedEntriesWithoutFurtherWrites(t *testing.T) {
	t.Parallel()
	store := newVersionedStore()
	cache := &deletingCache{fakeCache: fakeCache{err: errors.New("redis down")}}
	opts := fastOptions()
	opts.CacheCooldown = time.Millisecond
	in := New(store, cache, fakeSealer{}, opts)
	_, err := in.Ingest(context.Background(), []viswals.Record{rec(1, "a@b"), rec(2, "c@d")}, false)
	require.NoError(t, err)

	cache.mu.Lock()
	cache.err = nil
	cache.mu.Unlock()
	wait.Until(t, time.Minute, "the missed entries to be dropped", func() bool {
		cache.mu.Lock()
		defer cache.mu.Unlock()
		return len(cache.deleted) == 2
	})
	wait.Until(t, time.Minute, "the retry goroutine to end", func() bool { return !in.stale.draining.Load() })
}
