package httpapi

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/auth"
	"github.com/viswals/viswals/changefeed"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/usercache"
)

// discardWriter is a ResponseWriter that keeps nothing, so benchmarks
// measure the handler, not a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

// benchAPI is the real API (router, middleware, metrics, JSON request
// log) and the real read path (usercache, the keyring) over an in-memory
// cache and store.
func benchAPI(b *testing.B, users int) (*API, *memDB) {
	keys, err := emailcrypt.New([]byte("0123456789abcdefghijklmnopqrstuv"))
	if err != nil {
		b.Fatal(err)
	}
	db, cache := newMemDB(), mapCache{}
	var sealed []viswals.SealedUser
	for i := range users {
		u := testUser(int64(i+1), "Firstname", "Lastname")
		plain, _ := fakeKeys{}.Open(u)
		s, err := keys.Seal(viswals.Record{User: plain})
		if err != nil {
			b.Fatal(err)
		}
		sealed = append(sealed, s)
	}
	db.insert(sealed...)
	cache.Put(b.Context(), sealed)
	reg, log := prometheus.NewRegistry(), slog.New(slog.NewJSONHandler(io.Discard, nil))
	reader := usercache.NewStore(db, cache, keys, usercache.Options{Logger: log, Metrics: usercache.NewMetrics(reg)})
	api, err := New(Config{CursorKey: testKey, Registry: reg, Logger: log, AuthOff: true},
		Deps{Users: reader, Keys: keys, Feed: changefeed.New(db, changefeed.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	return api, db
}

func BenchmarkGetUser(b *testing.B) {
	api, _ := benchAPI(b, 10)
	req := httptest.NewRequest(http.MethodGet, "http://localhost/users/7", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		api.ServeHTTP(w, req)
		if w.status != http.StatusOK && w.status != 0 {
			b.Fatal(w.status)
		}
	}
}

// mapCache is a cache in memory, filled before the benchmark starts.
type mapCache map[int64]viswals.SealedUser

func (c mapCache) Get(ctx context.Context, id int64) (viswals.SealedUser, error) {
	u, ok := c[id]
	if !ok {
		return viswals.SealedUser{}, viswals.Errorf(viswals.ENOTFOUND, "user %d not cached", id)
	}
	return u, nil
}

func (c mapCache) Put(ctx context.Context, users []viswals.SealedUser) error {
	for _, u := range users {
		c[u.ID] = u
	}
	return nil
}

// BenchmarkBareHandler is the baseline: a ServeMux and a handler that
// writes a fixed reply of the same size, nothing else.
func BenchmarkBareHandler(b *testing.B) {
	body := []byte(`{"status":"success","data":{"id":7,"first_name":"Firstname","last_name":"Lastname","email_address":"user7@example.com","created_at":"2023-11-14T22:13:20.007Z","deleted_at":null,"merged_at":null,"parent_user_id":null}}` + "\n")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	req := httptest.NewRequest(http.MethodGet, "http://localhost/users/7", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		mux.ServeHTTP(w, req)
	}
}

// sliceStore is a usercache.Source over users sorted by id, so that
// BenchmarkListUsers measures the handler rather than the fake.
type sliceStore struct {
	*memDB
	users []viswals.SealedUser
}

func (s sliceStore) List(ctx context.Context, f viswals.Filter, afterID int64, limit int, fn func(viswals.SealedUser) error) error {
	i, _ := slices.BinarySearchFunc(s.users, afterID+1, func(u viswals.SealedUser, id int64) int { return cmp.Compare(u.ID, id) })
	for ; i < len(s.users) && limit > 0; i++ {
		if matchFilter(f, s.users[i]) {
			limit--
			if err := fn(s.users[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func BenchmarkListUsers(b *testing.B) {
	api, db := benchAPI(b, 1000)
	store := sliceStore{memDB: db}
	db.List(b.Context(), viswals.Filter{}, 0, 1000, func(u viswals.SealedUser) error {
		store.users = append(store.users, u)
		return nil
	})
	api, err := New(Config{CursorKey: testKey, Registry: prometheus.NewRegistry(), AuthOff: true,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))},
		Deps{Users: usercache.NewStore(store, nil, api.deps.Keys, usercache.Options{}), Keys: api.deps.Keys, Feed: api.deps.Feed})
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{"limit=100", "limit=1000", "limit=100&first_name=first&last_name=LAST"} {
		b.Run(q, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "http://localhost/users?"+q, nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				api.ServeHTTP(w, req)
			}
		})
	}
}

func BenchmarkAppendUser(b *testing.B) {
	u, _ := fakeKeys{}.Open(testUser(7, "Firstname", "Lastname"))
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendUser(buf[:0], &u)
	}
}

// BenchmarkGetUserWithKey is BenchmarkGetUser as production serves it:
// authentication on, the caller's API key checked on every request.
func BenchmarkGetUserWithKey(b *testing.B) {
	api, _ := benchAPI(b, 10)
	key, line, err := auth.GenerateKey("bench", auth.RolePII)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "api-keys")
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	keys, err := auth.OpenKeyFile(path, auth.KeyFileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	api.cfg.AuthOff, api.cfg.Auth = false, auth.NewAuthenticator(keys, nil)
	api.handler = api.newRouter()
	req := httptest.NewRequest(http.MethodGet, "http://localhost/users/7", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		api.ServeHTTP(w, req)
		if w.status != http.StatusOK && w.status != 0 {
			b.Fatal(w.status)
		}
	}
}
