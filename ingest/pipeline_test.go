package ingest_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/ingest"
	"github.com/viswals/viswals/internal/wait"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/postgres/pgtest"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rabbitmq/rmqtest"
	"github.com/viswals/viswals/rediscache"
	"github.com/viswals/viswals/rediscache/redistest"
)

// These tests run the ingester against the real Postgres, Redis and
// RabbitMQ, with faults injected at the store's edge: a write that commits
// and then reports a lost connection, and a store that refuses one user.

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping in -short mode: needs PostgreSQL (127.0.0.1:5432), Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672)")
	}
}

func openStore(t *testing.T) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.PoolConfig{})
	require.NoError(t, err)
	t.Cleanup(store.Close)
	return store
}

// openCache returns a cache under a key prefix of this test's own.
func openCache(t *testing.T) *rediscache.Cache {
	t.Helper()
	client := redistest.Client(t)
	return rediscache.New(client, rediscache.Options{Prefix: redistest.Prefix(t, client), TTL: time.Hour})
}

func newKeyring(t *testing.T) *emailcrypt.Keyring {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	k, err := emailcrypt.New(key)
	require.NoError(t, err)
	return k
}

func user(id, load int64, last string) viswals.Record {
	return viswals.Record{
		User: viswals.User{ID: id, FirstName: "First", LastName: last, Email: fmt.Sprintf("user.%d@example.com", id),
			CreatedAt: time.UnixMilli(1_600_000_000_000 + id).UTC()},
		Version: viswals.Version{Load: load, Line: id + 1},
	}
}

// commitThenFail is the real store whose next write, when armed, commits
// and then returns a connection error, as when Postgres goes down between
// the commit and its acknowledgement.
type commitThenFail struct {
	*postgres.Store
	armed atomic.Bool
}

func (s *commitThenFail) UpsertCounted(ctx context.Context, users []viswals.SealedUser, rc *viswals.Receipt) ([]viswals.SealedUser, bool, error) {
	changed, inserted, err := s.Store.UpsertCounted(ctx, users, rc)
	if err == nil && s.armed.CompareAndSwap(true, false) {
		return nil, false, viswals.Errorf(viswals.EUNAVAILABLE, "upsert batch: connection reset by peer")
	}
	return changed, inserted, err
}

// A write whose commit is acknowledged late (the retry finds nothing to
// change) must not leave the older version of its users in the cache.
func TestCommitAcknowledgedLateLeavesCacheCurrent(t *testing.T) {
	skipShort(t)
	t.Parallel()
	const n = 50
	store := &commitThenFail{Store: openStore(t)}
	cache := openCache(t)
	in := ingest.New(store, cache, newKeyring(t), ingest.Options{RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond})
	ctx := context.Background()

	var v1, v2 []viswals.Record
	for id := int64(1); id <= n; id++ {
		v1 = append(v1, user(id, 1, "Ng"))
		v2 = append(v2, user(id, 2, "Nakamura"))
	}
	_, err := in.Ingest(ctx, v1, false)
	require.NoError(t, err)
	store.armed.Store(true)
	_, err = in.Ingest(ctx, v2, false)
	require.NoError(t, err)
	require.False(t, store.armed.Load(), "the fault fired")

	for id := int64(1); id <= n; id++ {
		stored, err := store.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "Nakamura", stored.LastName)
		cached, err := cache.Get(ctx, id)
		if viswals.ErrorCode(err) == viswals.ENOTFOUND {
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, stored.Version, cached.Version, "user %d: the cache holds another version than Postgres", id)
		assert.Equal(t, stored.LastName, cached.LastName, "user %d is stale in the cache", id)
	}
}

// refusing is the real store refusing, as invalid, any batch that holds
// the user with id refuse (as a constraint the validation does not know
// would); refuse 0 refuses nothing. It counts, per id, the writes that
// changed the user.
type refusing struct {
	*postgres.Store
	refuse atomic.Int64

	mu      sync.Mutex
	changes map[int64]int
}

func (s *refusing) UpsertCounted(ctx context.Context, users []viswals.SealedUser, rc *viswals.Receipt) ([]viswals.SealedUser, bool, error) {
	for _, u := range users {
		if u.ID == s.refuse.Load() {
			return nil, false, viswals.Errorf(viswals.EINVALID, "upsert batch: value violates a constraint of the store")
		}
	}
	changed, inserted, err := s.Store.UpsertCounted(ctx, users, rc)
	s.mu.Lock()
	for _, u := range changed {
		s.changes[u.ID]++
	}
	s.mu.Unlock()
	return changed, inserted, err
}

func (s *refusing) changeCounts() map[int64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.changes)
}

// A user the store refuses leaves only as a dead letter holding the whole
// record as it arrived, with its reason; replayed once the store is fixed,
// it lands; the good users of its batch land exactly once.
func TestRefusedUserDeadLetteredWholeAndReplayed(t *testing.T) {
	skipShort(t)
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	store := &refusing{Store: openStore(t), changes: map[int64]int{}}
	store.refuse.Store(3)
	keyring := newKeyring(t)
	in := ingest.New(store, openCache(t), keyring, ingest.Options{})
	consumer := rabbitmq.NewConsumer(url, queue, rabbitmq.ConsumerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.Run(ctx, rabbitmq.BatchHandler(in, nil)) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	wait.Until(t, 30*time.Second, "the consumer to connect and declare its queues", consumer.Connected)

	parent := int64(1)
	deleted := time.UnixMilli(1_700_000_000_123).UTC()
	batch := []viswals.Record{user(1, 7, "Good"), user(2, 7, "Good"), user(3, 7, "Refused, Jr."), user(4, 7, "Good")}
	batch[2].DeletedAt, batch[2].ParentUserID = &deleted, &parent
	body, err := rabbitmq.Encode(rabbitmq.ContentTypeJSON, batch)
	require.NoError(t, err)
	rmqtest.Publish(t, url, queue, amqp.Publishing{ContentType: rabbitmq.ContentTypeJSON, Body: body, Headers: amqp.Table{"source": "users.csv"}})

	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 1, 30*time.Second)
	rmqtest.WaitMessages(t, url, queue, 0, 30*time.Second)

	// The dead letter: the refused record, whole, in the message's own
	// content type, with the reason for it. (Taken and put back.)
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	d, ok, err := ch.Get(rabbitmq.DLQName(queue), false)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, rabbitmq.ContentTypeJSON, d.ContentType)
	dead, err := rabbitmq.Decode(d.ContentType, d.Body)
	require.NoError(t, err)
	assert.Equal(t, []viswals.Record{batch[2]}, dead, "every field and the version")
	assert.Equal(t, []any{"id 3 (line 4): upsert batch: value violates a constraint of the store"}, d.Headers[rabbitmq.HeaderDeathReasons])
	assert.Contains(t, d.Headers[rabbitmq.HeaderDeathReason], "1 of 4 users refused")
	assert.Equal(t, "users.csv", d.Headers["source"])
	require.NoError(t, d.Nack(false, true))

	for _, id := range []int64{1, 2, 4} {
		_, err := store.Get(ctx, id)
		require.NoError(t, err, "good user %d landed", id)
	}
	_, err = store.Get(ctx, 3)
	require.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(err))

	// The store is fixed; the dead letter is replayed and lands.
	store.refuse.Store(0)
	moved, err := rabbitmq.ReplayDeadLetters(ctx, url, queue, rabbitmq.Topology{}, 0)
	require.NoError(t, err)
	require.Equal(t, 1, moved)
	wait.Until(t, 30*time.Second, "the replayed user to land", func() bool {
		_, err := store.Get(ctx, 3)
		return err == nil
	})
	rmqtest.WaitMessages(t, url, queue, 0, 30*time.Second)

	got, err := store.Get(ctx, 3)
	require.NoError(t, err)
	opened, err := keyring.Open(got)
	require.NoError(t, err)
	assert.Equal(t, batch[2].User, opened, "the replayed user is the record as it arrived")
	assert.Equal(t, batch[2].Version, got.Version)
	assert.Equal(t, map[int64]int{1: 1, 2: 1, 3: 1, 4: 1}, store.changeCounts(), "each user written exactly once")
	ready, _ := rmqtest.Messages(t, url, rabbitmq.DLQName(queue))
	assert.Zero(t, ready, "nothing left dead-lettered")
}
