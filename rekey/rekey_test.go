package rekey_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/postgres/pgtest"
	"github.com/viswals/viswals/rediscache"
	"github.com/viswals/viswals/rediscache/redistest"
	"github.com/viswals/viswals/rekey"
)

func randomKey(t *testing.T) []byte {
	k := make([]byte, emailcrypt.KeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

// The rotation, run for real: users sealed under the old key, in Postgres
// and in Redis; ingestion keeps writing newer versions sealed under the new
// key while rekey runs, and rekey is stopped at random batches and run
// again. In the end every row is under the new key, every email is the one
// last written, the cache holds nothing stale, and the old key can go.
func TestRekeyUnderIngestionStoppedAndResumed(t *testing.T) {
	ctx := context.Background()
	store, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.PoolConfig{MaxConns: 6})
	require.NoError(t, err)
	t.Cleanup(store.Close)
	rdb := redistest.Client(t)
	cache := rediscache.New(rdb, rediscache.Options{Prefix: redistest.Prefix(t, rdb), TTL: time.Hour})

	oldKey, newKey := randomKey(t), randomKey(t)
	oldRing, err := emailcrypt.New(oldKey)
	require.NoError(t, err)
	const n = 5000
	var mu sync.Mutex
	want := make(map[int64]string, n) // the email last written, per id
	seal := func(ring *emailcrypt.Keyring, id, line int64, email string) viswals.SealedUser {
		s, err := ring.Seal(viswals.Record{User: viswals.User{ID: id, FirstName: "F", LastName: "L", Email: email,
			CreatedAt: time.UnixMilli(1600000000000).UTC()}, Version: viswals.Version{Load: 1, Line: line}})
		require.NoError(t, err)
		return s
	}
	var users []viswals.SealedUser
	for id := int64(1); id <= n; id++ {
		want[id] = fmt.Sprintf("user%d@example.com", id)
		users = append(users, seal(oldRing, id, id, want[id]))
	}
	_, _, err = store.UpsertBatch(ctx, users)
	require.NoError(t, err)
	require.NoError(t, cache.Put(ctx, users))

	// The consumers restarted with ENCRYPTION_KEYS=k2:NEW,v1:OLD.
	ring, err := emailcrypt.NewKeyring("k2", map[string][]byte{"k2": newKey, "v1": oldKey})
	require.NoError(t, err)

	// Ingestion: newer versions of random users, as the consumer writes
	// them (store, then cache), until rekey is done.
	stop := make(chan struct{})
	var ingested sync.WaitGroup
	ingested.Go(func() {
		line := int64(n)
		for round := 0; ; round++ {
			select {
			case <-stop:
				return
			default:
			}
			var batch []viswals.SealedUser
			mu.Lock()
			for range 50 {
				id := mrand.Int64N(n) + 1
				line++
				want[id] = fmt.Sprintf("user%d.r%d@example.com", id, round)
				batch = append(batch, seal(ring, id, line, want[id]))
			}
			// Written while holding mu, so that want and the store agree.
			changed, _, err := store.UpsertBatch(ctx, batch)
			mu.Unlock()
			if !assert.NoError(t, err) {
				return
			}
			assert.NoError(t, cache.Put(ctx, changed))
		}
	})

	// Stopped at random batches, then run again, until a run completes.
	runs := 0
	for {
		runs++
		runCtx, cancel := context.WithCancel(ctx)
		stopAt := mrand.IntN(8) + 1
		batches := 0
		sum, err := rekey.Run(runCtx, store, cache, ring, rekey.Options{BatchSize: 200, Progress: func(rekey.Summary) {
			if batches++; batches == stopAt && runs < 5 {
				cancel()
			}
		}})
		cancel()
		if err == nil {
			assert.Equal(t, int64(n), sum.Scanned)
			break
		}
		require.ErrorIs(t, err, context.Canceled)
		require.Zero(t, sum.Failed)
	}
	close(stop)
	ingested.Wait()
	assert.GreaterOrEqual(t, runs, 2, "at least one run was stopped")

	// A run now finds nothing to do, and counts every row under k2.
	sum, err := rekey.Run(ctx, store, cache, ring, rekey.Options{DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, rekey.Summary{Scanned: n, Current: n, LastID: n, BySealing: map[string]int64{"k2": n}}, sum)

	// The old key removed: everything opens, in the store and the cache,
	// and is the email last written.
	newOnly, err := emailcrypt.NewKeyring("k2", map[string][]byte{"k2": newKey})
	require.NoError(t, err)
	for id := int64(1); id <= n; id += 1000 {
		ids := make([]int64, 0, 1000)
		for i := id; i < id+1000; i++ {
			ids = append(ids, i)
		}
		stored, err := store.GetMany(ctx, ids)
		require.NoError(t, err)
		require.Len(t, stored, len(ids))
		cached, errs := cache.GetMany(ctx, ids)
		for i, su := range stored {
			u, err := newOnly.Open(su)
			require.NoError(t, err, "user %d", su.ID)
			assert.Equal(t, want[su.ID], u.Email, "user %d", su.ID)
			if errs[i] != nil {
				assert.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(errs[i]), "user %d", su.ID)
				continue
			}
			cu, err := newOnly.Open(cached[i])
			require.NoError(t, err, "cached user %d is stale", su.ID)
			assert.Equal(t, want[su.ID], cu.Email, "cached user %d", su.ID)
		}
	}
}

// A row whose email does not open (its key is not in the ring, or it was
// moved from another row) is counted, logged by id, and left as it is.
func TestRekeyCountsRowsThatDoNotOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.PoolConfig{MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(store.Close)
	rdb := redistest.Client(t)
	cache := rediscache.New(rdb, rediscache.Options{Prefix: redistest.Prefix(t, rdb)})
	lost, err := emailcrypt.NewKeyring("gone", map[string][]byte{"gone": randomKey(t)})
	require.NoError(t, err)
	ring, err := emailcrypt.New(randomKey(t))
	require.NoError(t, err)
	var users []viswals.SealedUser
	for id := int64(1); id <= 3; id++ {
		r := ring
		if id == 2 {
			r = lost
		}
		s, err := r.Seal(viswals.Record{User: viswals.User{ID: id, Email: "a@example.com"}, Version: viswals.Version{Load: 1, Line: id}})
		require.NoError(t, err)
		users = append(users, s)
	}
	_, _, err = store.UpsertBatch(ctx, users)
	require.NoError(t, err)
	var logs bytes.Buffer
	sum, err := rekey.Run(ctx, store, cache, ring, rekey.Options{Logger: slogTo(&logs)})
	require.NoError(t, err)
	assert.Equal(t, int64(1), sum.Failed)
	assert.Equal(t, int64(2), sum.Current)
	assert.Equal(t, map[string]int64{"v1": 2, "gone": 1}, sum.BySealing)
	assert.Contains(t, logs.String(), `"id":2`)
	assert.Contains(t, sum.String(), "scanned=3 resealed=0 skipped=2 failed=1")
}

func slogTo(w *bytes.Buffer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

// BenchmarkRekey re-seals b.N rows sealed under an old key, and as the
// yardstick writes the same rows as ingestion does (UpsertBatch, 1000 per
// batch): rekey's cost per row against a load's.
func BenchmarkRekey(b *testing.B) {
	ctx := context.Background()
	store, err := postgres.Open(ctx, pgtest.NewDatabase(b), postgres.PoolConfig{MaxConns: 4})
	require.NoError(b, err)
	b.Cleanup(store.Close)
	rdb := redistest.Client(b)
	cache := rediscache.New(rdb, rediscache.Options{Prefix: redistest.Prefix(b, rdb)})
	oldRing, err := emailcrypt.NewKeyring("v1", map[string][]byte{"v1": bytes.Repeat([]byte{0x5a, 0x17, 0xc3, 0x88}, 8)})
	require.NoError(b, err)
	ring, err := emailcrypt.NewKeyring("k2", map[string][]byte{"k2": bytes.Repeat([]byte{0x3c, 0x91, 0x07, 0xe4}, 8), "v1": bytes.Repeat([]byte{0x5a, 0x17, 0xc3, 0x88}, 8)})
	require.NoError(b, err)
	n := b.N
	start := time.Now()
	for lo := 1; lo <= n; lo += 1000 {
		var batch []viswals.SealedUser
		for id := lo; id < lo+1000 && id <= n; id++ {
			s, err := oldRing.Seal(viswals.Record{User: viswals.User{ID: int64(id), FirstName: "First", LastName: "Last",
				Email: fmt.Sprintf("firstname.lastname%d@example.com", id), CreatedAt: time.UnixMilli(1600000000000).UTC()},
				Version: viswals.Version{Load: 1, Line: int64(id)}})
			require.NoError(b, err)
			batch = append(batch, s)
		}
		_, _, err := store.UpsertBatch(ctx, batch)
		require.NoError(b, err)
	}
	load := time.Since(start)
	b.ResetTimer()
	sum, err := rekey.Run(ctx, store, cache, ring, rekey.Options{BatchSize: 1000})
	b.StopTimer()
	require.NoError(b, err)
	require.Equal(b, int64(n), sum.Resealed)
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(n)/load.Seconds(), "load-rows/s")
}
