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
	"github.com/viswals/viswals/rabbitmq"
)

// versionedStore keeps the greatest version per id, as the real upsert
// does, and reports as changed only the users it wrote.
type versionedStore struct {
	mu       sync.Mutex
	versions map[int64]viswals.Version
}

func (s *versionedStore) UpsertBatch(_ context.Context, users []viswals.SealedUser) ([]viswals.SealedUser, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var changed []viswals.SealedUser
	inserted := true
	for _, u := range users {
		cur, ok := s.versions[u.ID]
		inserted = inserted && !ok
		if ok && !cur.Less(u.Version) {
			continue
		}
		s.versions[u.ID] = u.Version
		changed = append(changed, u)
	}
	return changed, inserted, nil
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

// A consumer that dies between the commit and the cache write leaves the
// users committed but not cached, and the cache possibly holding an older
// version. The redelivered message changes nothing in the store, so its
// users' cache entries must be dropped, not left stale.
func TestRedeliveryDropsCacheEntriesItCannotVouchFor(t *testing.T) {
	t.Parallel()
	store := &versionedStore{versions: map[int64]viswals.Version{}}
	cache := &deletingCache{}
	h := New(store, cache, fakeSealer{}, fastOptions()).Handler(&fakeDLQ{})
	delivery := func(redelivered bool, recs ...viswals.Record) rabbitmq.Delivery {
		body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, recs)
		require.NoError(t, err)
		return rabbitmq.Delivery{ContentType: rabbitmq.ContentTypeGob, Body: body, Redelivered: redelivered}
	}

	// First delivery: committed; pretend the process died before the ack.
	require.IsType(t, rabbitmq.Ack{}, h(context.Background(), delivery(false, rec(1, "a@b"), rec(2, "c@d"))))
	assert.Empty(t, cache.deleted, "a first delivery deletes nothing")

	// Redelivery, with one user new to the store: it is cached, the others
	// are dropped.
	require.IsType(t, rabbitmq.Ack{}, h(context.Background(), delivery(true, rec(1, "a@b"), rec(2, "c@d"), rec(3, "e@f"))))
	slices.Sort(cache.deleted)
	assert.Equal(t, []int64{1, 2}, cache.deleted)
	assert.Contains(t, cache.ids, int64(3))
}

// A cache without Delete is simply not invalidated.
func TestRedeliveryWithPutOnlyCache(t *testing.T) {
	t.Parallel()
	store := &versionedStore{versions: map[int64]viswals.Version{}}
	in := New(store, &fakeCache{}, fakeSealer{}, fastOptions())
	_, err := in.ingest(context.Background(), []viswals.Record{rec(1, "a@b")}, true)
	require.NoError(t, err)
	_, err = in.ingest(context.Background(), []viswals.Record{rec(1, "a@b")}, true)
	require.NoError(t, err)
}

// Writes the cache missed while it was unreachable (failed, or skipped by
// the breaker) may have left older versions in it, if it comes back with
// its data: their entries are deleted before the next write.
func TestCacheOutageDropsMissedEntriesOnRecovery(t *testing.T) {
	t.Parallel()
	store := &versionedStore{versions: map[int64]viswals.Version{}}
	cache := &deletingCache{fakeCache: fakeCache{err: errors.New("redis down")}}
	in := New(store, cache, fakeSealer{}, fastOptions())
	in.cacheBreaker.cooldown = time.Hour
	ingest := func(ids ...int64) {
		t.Helper()
		var recs []viswals.Record
		for _, id := range ids {
			recs = append(recs, rec(id, "a@b"))
		}
		_, err := in.Ingest(context.Background(), recs)
		require.NoError(t, err)
	}

	ingest(1, 2) // the write fails
	ingest(3)    // the breaker skips the write
	assert.Equal(t, 1, cache.putNews, "new ids, one write tried")

	cache.mu.Lock()
	cache.err = nil
	cache.mu.Unlock()
	in.cacheBreaker.succeed() // as after the cooldown
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
	store := &versionedStore{versions: map[int64]viswals.Version{}}
	cache := &deletingCache{fakeCache: fakeCache{err: errors.New("redis down")}}
	in := New(store, cache, fakeSealer{}, fastOptions())
	in.cacheBreaker.cooldown = time.Millisecond
	_, err := in.Ingest(context.Background(), []viswals.Record{rec(1, "a@b"), rec(2, "c@d")})
	require.NoError(t, err)

	cache.mu.Lock()
	cache.err = nil
	cache.mu.Unlock()
	require.Eventually(t, func() bool {
		cache.mu.Lock()
		defer cache.mu.Unlock()
		return len(cache.deleted) == 2
	}, 10*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return !in.stale.draining.Load() }, 10*time.Second, time.Millisecond, "the retry goroutine should end")
}
