package usercache

// The Store over the real Postgres and Redis: what the fakes cannot show
// (the cache's encoding and version guard, a Redis that is not there).

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/postgres/pgtest"
	"github.com/viswals/viswals/rediscache"
	"github.com/viswals/viswals/rediscache/redistest"
)

// realEnv is a fresh database with users written as the consumer writes
// them, and the keyring that sealed them.
type realEnv struct {
	pg   *postgres.Store
	keys *emailcrypt.Keyring
}

func newRealEnv(t *testing.T, users ...viswals.User) *realEnv {
	t.Helper()
	ctx := context.Background()
	pg, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.PoolConfig{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	keys, err := emailcrypt.New([]byte("an example key of 32 bytes: 0123"))
	if err != nil {
		t.Fatal(err)
	}
	sealed := make([]viswals.SealedUser, len(users))
	for i, u := range users {
		if sealed[i], err = keys.Seal(viswals.Record{User: u, Version: viswals.Version{Load: 1, Line: int64(i + 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := pg.UpsertBatch(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	return &realEnv{pg: pg, keys: keys}
}

func realUser(id int64) viswals.User {
	deleted := time.UnixMilli(1700000000123).UTC()
	parent := int64(3)
	return viswals.User{ID: id, FirstName: "Zoë", LastName: "O'Neil", Email: fmt.Sprintf("zoe+%d@example.co.uk", id),
		CreatedAt: time.UnixMilli(1600000000000 + id).UTC(), DeletedAt: &deleted, ParentUserID: &parent}
}

func sameUser(a, b viswals.User) bool {
	return a.ID == b.ID && a.FirstName == b.FirstName && a.LastName == b.LastName && a.Email == b.Email &&
		a.CreatedAt.Equal(b.CreatedAt) && a.DeletedAt != nil && b.DeletedAt != nil && a.DeletedAt.Equal(*b.DeletedAt) &&
		a.MergedAt == nil && b.MergedAt == nil && a.ParentUserID != nil && b.ParentUserID != nil && *a.ParentUserID == *b.ParentUserID
}

func TestRealStoresGet(t *testing.T) {
	t.Parallel()
	const n = 64
	var users []viswals.User
	for id := int64(1); id <= n; id++ {
		users = append(users, realUser(id))
	}
	e := newRealEnv(t, users...)
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	reg := prometheus.NewRegistry()
	s := NewStore(e.pg, rediscache.New(rdb, rediscache.Options{Prefix: prefix, TTL: time.Hour}), e.keys,
		Options{Metrics: NewMetrics(reg)})
	ctx := context.Background()
	key := prefix + "42"
	check := func(label string) {
		t.Helper()
		u, err := s.Get(ctx, 42)
		if err != nil || !sameUser(u, users[41]) {
			t.Fatalf("%s: %+v %v, want %+v", label, u, err, users[41])
		}
	}

	if n, _ := rdb.Exists(ctx, key).Result(); n != 0 {
		t.Fatal("cached before any read")
	}
	check("miss")
	cached, err := rdb.Get(ctx, key).Result()
	if err != nil {
		t.Fatalf("the miss did not fill Redis: %v", err)
	}
	if strings.Contains(cached, users[41].Email) {
		t.Fatal("plaintext email in Redis")
	}
	check("hit")
	rdb.Set(ctx, key, "not a cached user", time.Hour)
	check("corrupt")
	if v, _ := rdb.Get(ctx, key).Result(); v == "not a cached user" {
		t.Fatal("the corrupt value was not replaced")
	}
	if _, err := s.Get(ctx, n+1); viswals.ErrorCode(err) != viswals.ENOTFOUND {
		t.Fatalf("unknown id: %v", err)
	}
	if got, want := lookups(t, reg), map[string]float64{"hit": 1, "miss": 2, "error": 1}; !maps.Equal(got, want) {
		t.Errorf("lookups %v, want %v", got, want)
	}

	// Concurrent reads share round trips (GetMany): each still gets its
	// own user, whether it was cached or not.
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			if u, err := s.Get(ctx, users[i].ID); err != nil || !sameUser(u, users[i]) {
				t.Errorf("concurrent Get(%d): %+v %v", users[i].ID, u, err)
			}
		})
	}
	wg.Wait()
	if n, _ := rdb.Exists(ctx, prefix+"1", prefix+"64").Result(); n != 2 {
		t.Errorf("concurrent misses not filled")
	}
}

// A cache whose server is gone: reads fall back to Postgres, and only the
// first waits on Redis until the cooldown is over.
func TestRealStoresRedisDown(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t, realUser(7))
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	reg := prometheus.NewRegistry()
	s := NewStore(e.pg, rediscache.New(dead, rediscache.Options{}), e.keys, Options{Metrics: NewMetrics(reg)})
	for range 3 {
		if u, err := s.Get(context.Background(), 7); err != nil || !sameUser(u, realUser(7)) {
			t.Fatalf("Get with Redis down: %+v %v", u, err)
		}
	}
	if got := lookups(t, reg); !maps.Equal(got, map[string]float64{"error": 1}) {
		t.Errorf("lookups %v: Redis asked again within the cooldown", got)
	}
}
