// Command apibench serves the API over in-memory data (or a real Redis
// cache) next to a bare net/http handler, so that the two can be load
// tested side by side:
//
//	go run ./httpapi/internal/apibench -users 100000 2>/dev/null &
//	wrk -t2 -c64 -d10s --latency http://127.0.0.1:18081/users/42   # bare
//	wrk -t2 -c64 -d10s --latency http://127.0.0.1:18080/users/42   # API
//
// The API runs exactly as cmd/consumer wires it (router, metrics, a JSON
// log line per request to stderr, the real keyring); only the stores are
// replaced, unless -redis names a Redis to serve the reads from.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/changefeed"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/httpapi"
	"github.com/viswals/viswals/rediscache"
	"github.com/viswals/viswals/usercache"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "API address")
	bare := flag.String("bare", "127.0.0.1:18081", "bare handler address")
	users := flag.Int("users", 100000, "users to serve")
	redisURL := flag.String("redis", "", "serve reads from this Redis (e.g. redis://127.0.0.1:6379/15) instead of memory")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address")
	rawRedis := flag.String("raw-redis", "", "serve reads from this Redis with a plain JSON value and no rediscache (to compare round-trip strategies)")
	batch := flag.Bool("batch", true, "with -raw-redis: let concurrent reads share round trips (GetMany)")
	flag.Parse()
	if *pprofAddr != "" {
		go func() { log.Println(http.ListenAndServe(*pprofAddr, nil)) }()
	}

	key := []byte("apibench key, exactly 32 bytes!!")
	keys, err := emailcrypt.New(key)
	if err != nil {
		log.Fatal(err)
	}
	mem := &memStore{users: make(map[int64]viswals.SealedUser, *users)}
	sealed := make([]viswals.SealedUser, 0, *users)
	for i := 1; i <= *users; i++ {
		u := viswals.User{ID: int64(i), FirstName: fmt.Sprintf("First%d", rand.N(1000)), LastName: "Lastname",
			Email: fmt.Sprintf("user%d@example.com", i), CreatedAt: time.UnixMilli(1700000000000 + int64(i))}
		s, err := keys.Seal(viswals.Record{User: u, Version: viswals.Version{Load: 1, Line: int64(i)}})
		if err != nil {
			log.Fatal(err)
		}
		mem.users[s.ID] = s
		sealed = append(sealed, s)
	}
	var cache usercache.Cache = mem
	if *redisURL != "" {
		opts, err := redis.ParseURL(*redisURL)
		if err != nil {
			log.Fatal(err)
		}
		opts.PoolSize = 128
		c := rediscache.New(redis.NewClient(opts), rediscache.Options{Prefix: "apibench:users:"})
		for i := 0; i < len(sealed); i += 1000 {
			if err := c.Put(context.Background(), sealed[i:min(i+1000, len(sealed))]); err != nil {
				log.Fatal(err)
			}
		}
		cache = c
	}
	if *rawRedis != "" {
		opts, err := redis.ParseURL(*rawRedis)
		if err != nil {
			log.Fatal(err)
		}
		opts.PoolSize = 128
		rc := &rawCache{client: redis.NewClient(opts)}
		if err := rc.Put(context.Background(), sealed); err != nil {
			log.Fatal(err)
		}
		if *batch {
			cache = rc
		} else {
			cache = struct{ usercache.Cache }{rc} // hides GetMany
		}
	}
	reg, logger := prometheus.NewRegistry(), slog.New(slog.NewJSONHandler(os.Stderr, nil))
	reader := usercache.NewStore(mem, cache, keys, usercache.Options{Logger: logger, Metrics: usercache.NewMetrics(reg)})
	api, err := // The handler alone, without authentication: bench/ measures the
		// consumer itself, with an API key.
		httpapi.New(httpapi.Config{CursorKey: keys.CursorKey(), Registry: reg, Logger: logger, AuthOff: true},
			httpapi.Deps{Users: reader, Keys: keys, Feed: changefeed.New(noFeed{}, changefeed.Options{})})
	if err != nil {
		log.Fatal(err)
	}

	body := []byte(`{"status":"success","data":{"id":42,"first_name":"First123","last_name":"Lastname","email_address":"user42@example.com","created_at":"2023-11-14T22:13:20.042Z","deleted_at":null,"merged_at":null,"parent_user_id":null}}` + "\n")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	go func() { log.Fatal(httpapi.NewServer(*bare, mux).ListenAndServe()) }()
	log.Printf("API on %s, bare handler on %s, %d users", *addr, *bare, *users)
	log.Fatal(httpapi.NewServer(*addr, api).ListenAndServe())
}

// memStore is the store and the cache in memory.
type memStore struct {
	mu    sync.RWMutex
	users map[int64]viswals.SealedUser
}

func (m *memStore) Get(ctx context.Context, id int64) (viswals.SealedUser, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	u, ok := m.users[id]
	if !ok {
		return viswals.SealedUser{}, viswals.Errorf(viswals.ENOTFOUND, "user %d not found", id)
	}
	return u, nil
}

func (m *memStore) Put(ctx context.Context, users []viswals.SealedUser) error { return nil }

func (m *memStore) List(ctx context.Context, f viswals.Filter, afterID int64, limit int, fn func(viswals.SealedUser) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for id := afterID + 1; limit > 0; id++ {
		u, ok := m.users[id]
		if !ok {
			return nil
		}
		limit--
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

// noFeed is a changefeed that is never available: apibench serves no SSE.
type noFeed struct{}

var errNoFeed = viswals.Errorf(viswals.EUNAVAILABLE, "apibench has no changefeed")

func (noFeed) CurrentSnapshot(context.Context) (viswals.Snapshot, error) {
	return viswals.Snapshot{}, errNoFeed
}

func (noFeed) ListVisible(context.Context, viswals.Filter, int64, int, viswals.Snapshot, func(viswals.SealedUser) error) error {
	return errNoFeed
}

func (noFeed) CountVisible(context.Context, viswals.Filter, int64, viswals.Snapshot) (int64, error) {
	return 0, errNoFeed
}

func (noFeed) Changes(context.Context, viswals.Filter, viswals.Pos, int, func(viswals.Change) error) (uint64, error) {
	return 0, errNoFeed
}

func (noFeed) Listen(ctx context.Context, _ func()) error { <-ctx.Done(); return ctx.Err() }

// rawCache keeps users in Redis as plain JSON, without rediscache: a
// stand-in to compare one round trip per read with shared round trips.
type rawCache struct{ client *redis.Client }

func rawKey(id int64) string { return "apibench:raw:" + strconv.FormatInt(id, 10) }

func (c *rawCache) Put(ctx context.Context, users []viswals.SealedUser) error {
	for i := 0; i < len(users); i += 1000 {
		pipe := c.client.Pipeline()
		for _, u := range users[i:min(i+1000, len(users))] {
			b, _ := json.Marshal(u)
			pipe.Set(ctx, rawKey(u.ID), b, time.Hour)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (c *rawCache) Get(ctx context.Context, id int64) (viswals.SealedUser, error) {
	b, err := c.client.Get(ctx, rawKey(id)).Bytes()
	return decodeRaw(id, b, err)
}

func (c *rawCache) GetMany(ctx context.Context, ids []int64) ([]viswals.SealedUser, []error) {
	users, errs := make([]viswals.SealedUser, len(ids)), make([]error, len(ids))
	cmds := make([]*redis.StringCmd, len(ids))
	pipe := c.client.Pipeline()
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, rawKey(id))
	}
	pipe.Exec(ctx) //nolint:errcheck // per-command errors below
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		users[i], errs[i] = decodeRaw(ids[i], b, err)
	}
	return users, errs
}

func decodeRaw(id int64, b []byte, err error) (viswals.SealedUser, error) {
	if errors.Is(err, redis.Nil) {
		return viswals.SealedUser{}, viswals.Errorf(viswals.ENOTFOUND, "user %d not cached", id)
	}
	if err != nil {
		return viswals.SealedUser{}, viswals.Errorf(viswals.EUNAVAILABLE, "redis: %v", err)
	}
	var u viswals.SealedUser
	err = json.Unmarshal(b, &u)
	return u, err
}
