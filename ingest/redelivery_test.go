package ingest

import (
	"context"
	"slices"
	"sync"
	"testing"

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

func (s *versionedStore) UpsertBatch(_ context.Context, users []viswals.SealedUser) ([]viswals.SealedUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var changed []viswals.SealedUser
	for _, u := range users {
		if cur, ok := s.versions[u.ID]; ok && !cur.Less(u.Version) {
			continue
		}
		s.versions[u.ID] = u.Version
		changed = append(changed, u)
	}
	return changed, nil
}

// deletingCache is a cache that records what it is told, deletes included.
type deletingCache struct {
	fakeCache
	deleted []int64
}

func (c *deletingCache) Delete(_ context.Context, ids []int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleted = append(c.deleted, ids...)
	return nil
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
