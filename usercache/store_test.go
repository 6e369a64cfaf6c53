package usercache

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/logbuf"
)

// env is a Store over fakes, with its log and metrics kept.
type env struct {
	src   *memSource
	cache *memCache
	store *Store
	reg   *prometheus.Registry
	logs  *logbuf.Buffer
}

func newTestEnv(t *testing.T, users ...viswals.SealedUser) *env {
	t.Helper()
	e := &env{src: newMemSource(users...), cache: newMemCache(), reg: prometheus.NewRegistry(), logs: &logbuf.Buffer{}}
	e.store = NewStore(e.src, e.cache, fakeKeys{}, Options{
		Logger:  slog.New(slog.NewJSONHandler(e.logs, nil)),
		Metrics: NewMetrics(e.reg),
	})
	return e
}

// get reads user id and fails the test unless it comes back whole.
func (e *env) get(t *testing.T, id int64) {
	t.Helper()
	u, err := e.store.Get(context.Background(), id)
	if err != nil || u.ID != id || u.Email == "" {
		t.Fatalf("Get(%d) = %+v, %v", id, u, err)
	}
}

func TestGetCacheAside(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, testUser(1, "Ann", "Lee"))

	// A miss reads the source and fills the cache...
	e.get(t, 1)
	if _, ok := e.cache.users[1]; !ok || e.src.gets != 1 {
		t.Fatalf("after a miss: cached %v, source gets %d; want cached, 1", ok, e.src.gets)
	}
	// ...and the next read is served from the cache alone.
	if u, err := e.store.Get(context.Background(), 1); err != nil || u.Email != "user1@example.com" {
		t.Fatalf("cached read: %+v %v", u, err)
	}
	if e.src.gets != 1 {
		t.Fatalf("source gets %d after a hit, want 1", e.src.gets)
	}

	// A corrupt value falls back to the source and is replaced.
	e.cache.corrupt[1] = true
	e.get(t, 1)
	if e.cache.corrupt[1] || e.src.gets != 2 {
		t.Fatalf("corrupt value not replaced from the source (gets %d)", e.src.gets)
	}

	// A value that decodes but does not open is corrupt too.
	bad := testUser(1, "Ann", "Lee")
	bad.EmailSealed = "garbage"
	e.cache.users[1] = bad
	e.get(t, 1)
	if e.cache.users[1].EmailSealed != "sealed:user1@example.com" {
		t.Fatalf("unopenable value not replaced")
	}
	if logs := e.logs.String(); !strings.Contains(logs, "cached user does not open") || !strings.Contains(logs, "cached user unreadable") {
		t.Errorf("corrupt values not logged: %s", logs)
	}

	// Redis down: served from the source, no error, no cache write.
	e.cache.down = true
	puts := e.cache.puts
	e.get(t, 1)
	if e.cache.puts != puts {
		t.Fatalf("wrote to a cache that is down")
	}
	// An unknown id is ENOTFOUND whether or not the cache is up.
	if _, err := e.store.Get(context.Background(), 2); viswals.ErrorCode(err) != viswals.ENOTFOUND {
		t.Fatalf("unknown id: %v", err)
	}

	// One hit, one miss, then the corrupt, unopenable and unavailable
	// reads, under the metric name the HTTP API has always exposed.
	if got, want := lookups(t, e.reg), map[string]float64{"hit": 1, "miss": 1, "error": 2}; !maps.Equal(got, want) {
		t.Errorf("viswals_http_user_cache_total by result: %v, want %v", got, want)
	}
}

// lookups returns the cache lookups counted on reg, by result, leaving
// out the results never seen.
func lookups(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "viswals_http_user_cache_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && m.GetCounter().GetValue() != 0 {
					counts[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return counts
}

// A caller that goes away while the cache is asked gets nothing more: no
// source read, no "unreadable cache" warning for its cancelled context.
func TestGetCallerGone(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, testUser(1, "Ann", "Lee"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.store.Get(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: %v", err)
	}
	if e.src.gets != 0 {
		t.Errorf("source read %d times for a caller that had gone", e.src.gets)
	}
	if logs := e.logs.String(); logs != "" {
		t.Errorf("logged a cancelled read: %s", logs)
	}
}

// After the cache answers "unavailable", reads go straight to the source
// for a cooldown instead of each waiting on Redis again; then it is probed.
func TestGetSkipsUnavailableCacheForAWhile(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, testUser(1, "Ann", "Lee"))
	e.cache.down = true
	for range 3 {
		e.get(t, 1)
	}
	if e.cache.gets != 1 || e.src.gets != 3 {
		t.Fatalf("cache asked %d times, source %d; want 1 and 3", e.cache.gets, e.src.gets)
	}
	e.cache.down = false
	e.store.breaker.Reset() // the cooldown is over
	e.get(t, 1)
	if e.cache.gets != 2 || e.cache.puts != 1 {
		t.Fatalf("after the cooldown: cache gets %d, puts %d; want the probe and the refill", e.cache.gets, e.cache.puts)
	}
}

func TestGetWithoutCache(t *testing.T) {
	t.Parallel()
	src := newMemSource(testUser(1, "Ann", "Lee"))
	s := NewStore(src, nil, fakeKeys{}, Options{})
	if u, err := s.Get(context.Background(), 1); err != nil || u.Email != "user1@example.com" {
		t.Fatalf("Get: %+v %v", u, err)
	}
}

// Errors of the source reach the caller as they are: their codes decide
// the reply.
func TestGetSourceErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"unavailable", viswals.Errorf(viswals.EUNAVAILABLE, "postgres down")},
		{"other", errors.New("pq: internals")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			e.src.getErr = tc.err
			if _, err := e.store.Get(context.Background(), 1); !errors.Is(err, tc.err) {
				t.Errorf("Get: %v, want %v", err, tc.err)
			}
			if e.cache.puts != 0 {
				t.Errorf("filled the cache after a failed read")
			}
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, testUser(3, "Ann", "Lee"), testUser(1, "Bob", "Lee"), testUser(2, "Ann", "Ray"))
	var got []string
	err := e.store.List(context.Background(), viswals.Filter{FirstName: "Ann"}, 0, 10, func(u viswals.User) error {
		got = append(got, u.Email)
		return nil
	})
	if want := []string{"user2@example.com", "user3@example.com"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("List: %v %v, want %v", got, err, want)
	}
	if e.cache.gets+e.cache.puts != 0 {
		t.Errorf("List used the cache")
	}

	// A row that does not open ends the list with the error.
	bad := testUser(4, "Ann", "Lee")
	bad.EmailSealed = "garbage"
	e.src.users[4] = bad
	n := 0
	err = e.store.List(context.Background(), viswals.Filter{}, 0, 10, func(viswals.User) error { n++; return nil })
	if err == nil || n != 3 {
		t.Fatalf("List over an unopenable row: %d rows, %v", n, err)
	}
}
