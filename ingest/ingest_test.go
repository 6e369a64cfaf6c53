package ingest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/rabbitmq"
)

// Fakes for pure logic: the real stores are exercised by the end-to-end
// and fault tests.

type fakeStore struct {
	mu       sync.Mutex
	fails    int   // UpsertBatch fails with EUNAVAILABLE this many times first
	poison   int64 // a batch holding this id fails with EINVALID
	calls    int
	upserted []int64
	inserted bool // what UpsertBatch reports
}

func (s *fakeStore) UpsertBatch(_ context.Context, users []viswals.SealedUser) ([]viswals.SealedUser, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
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

type fakeDLQ struct {
	mu      sync.Mutex
	reasons []string
	bodies  [][]byte
	err     error
}

func (d *fakeDLQ) DeadLetter(_ context.Context, body []byte, _ string, _ amqp.Table, reason string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return d.err
	}
	d.reasons = append(d.reasons, reason)
	d.bodies = append(d.bodies, body)
	return nil
}

func rec(id int64, email string) viswals.Record {
	return viswals.Record{User: viswals.User{ID: id, Email: email, CreatedAt: time.UnixMilli(1).UTC()}, Version: viswals.Version{Load: 1, Line: id + 1}}
}

func fastOptions() Options {
	return Options{RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}
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
		{name: "store refuses one user: the rest land", store: &fakeStore{poison: 2},
			recs: []viswals.Record{rec(1, "a@b"), rec(2, "c@d"), rec(3, "e@f")}, wantStored: []int64{1, 3}, wantRejected: []int64{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cache := &fakeCache{}
			in := New(tt.store, cache, fakeSealer{}, fastOptions())
			rejected, err := in.Ingest(context.Background(), tt.recs)
			require.NoError(t, err)
			assert.Equal(t, tt.wantStored, tt.store.upserted)
			var ids []int64
			for _, r := range rejected {
				ids = append(ids, r.Record.ID)
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
		_, err := in.Ingest(context.Background(), []viswals.Record{rec(1, "a@b"), rec(2, "c@d")})
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
	store := &fakeStore{fails: 1 << 30}
	in := New(store, nil, fakeSealer{}, fastOptions())
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			store.mu.Lock()
			calls := store.calls
			store.mu.Unlock()
			if calls >= 3 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	_, err := in.Ingest(ctx, []viswals.Record{rec(1, "a@b")})
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
		_, err := in.Ingest(context.Background(), []viswals.Record{rec(int64(i+1), "a@b")})
		require.NoError(t, err)
	}
	assert.Equal(t, []int64{1, 2, 3}, store.upserted)
	assert.Equal(t, 1, cache.puts, "after a failure the breaker skips the cache for a while")
}

func encode(t *testing.T, recs ...viswals.Record) []byte {
	t.Helper()
	b, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, recs)
	require.NoError(t, err)
	return b
}

func TestHandler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		contentType string
		body        func(t *testing.T) []byte
		store       *fakeStore
		dlqErr      error
		want        rabbitmq.Outcome
		wantDLQ     int
		wantStored  []int64
	}{
		{name: "good batch acked", contentType: rabbitmq.ContentTypeGob, body: func(t *testing.T) []byte { return encode(t, rec(1, "a@b"), rec(2, "c@d")) },
			want: rabbitmq.Ack{}, wantStored: []int64{1, 2}},
		{name: "garbage dead-lettered", contentType: rabbitmq.ContentTypeGob, body: func(*testing.T) []byte { return []byte("garbage") },
			want: rabbitmq.DeadLetter{}},
		{name: "unknown content type dead-lettered", contentType: "text/plain", body: func(*testing.T) []byte { return []byte("1,2,3") },
			want: rabbitmq.DeadLetter{}},
		{name: "all invalid dead-lettered whole", contentType: rabbitmq.ContentTypeGob, body: func(t *testing.T) []byte { return encode(t, rec(1, "bad")) },
			want: rabbitmq.DeadLetter{}},
		{name: "mixed: bad users dead-lettered apart, message acked", contentType: rabbitmq.ContentTypeGob,
			body: func(t *testing.T) []byte { return encode(t, rec(1, "a@b"), rec(2, "bad"), rec(3, "e@f")) },
			want: rabbitmq.Ack{}, wantDLQ: 1, wantStored: []int64{1, 3}},
		{name: "mixed, dead letter fails: requeued (good users already committed, idempotent)", contentType: rabbitmq.ContentTypeGob,
			body:   func(t *testing.T) []byte { return encode(t, rec(1, "a@b"), rec(2, "bad")) },
			dlqErr: errors.New("broker gone"), want: rabbitmq.Requeue{}, wantStored: []int64{1}},
		{name: "JSON without versions", contentType: rabbitmq.ContentTypeJSON,
			body: func(*testing.T) []byte {
				return []byte(`[{"id":7,"first_name":"A","last_name":"B","email_address":"a@b.c","created_at":"2020-01-01T00:00:00Z","deleted_at":null,"merged_at":null,"parent_user_id":null}]`)
			},
			want: rabbitmq.Ack{}, wantStored: []int64{7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := tt.store
			if store == nil {
				store = &fakeStore{}
			}
			dlq := &fakeDLQ{err: tt.dlqErr}
			h := New(store, nil, fakeSealer{}, fastOptions()).Handler(dlq)
			got := h(context.Background(), rabbitmq.Delivery{ContentType: tt.contentType, Body: tt.body(t)})
			assert.IsType(t, tt.want, got)
			if dl, ok := got.(rabbitmq.DeadLetter); ok {
				assert.NotEmpty(t, dl.Reason)
			}
			assert.Len(t, dlq.reasons, tt.wantDLQ)
			if tt.wantDLQ > 0 {
				recs, err := rabbitmq.Decode(tt.contentType, dlq.bodies[0])
				require.NoError(t, err)
				require.Len(t, recs, 1)
				assert.Equal(t, int64(2), recs[0].ID, "only the invalid user is dead-lettered")
				assert.Contains(t, dlq.reasons[0], "id 2")
			}
			assert.Equal(t, tt.wantStored, store.upserted)
		})
	}
}

func TestAssignVersions(t *testing.T) {
	t.Parallel()
	recs := []viswals.Record{{}, {Version: viswals.Version{Load: 5, Line: 9}}, {}}
	now := time.Unix(100, 0)
	assignVersions(recs, now)
	assert.Equal(t, viswals.Version{Load: now.UnixNano(), Line: 1}, recs[0].Version)
	assert.Equal(t, viswals.Version{Load: 5, Line: 9}, recs[1].Version, "a version sent by the producer is kept")
	assert.Equal(t, viswals.Version{Load: now.UnixNano(), Line: 3}, recs[2].Version)
}
