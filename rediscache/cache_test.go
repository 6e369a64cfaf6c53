package rediscache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/viswals/viswals"
	"github.com/viswals/viswals/rediscache/redistest"
)

// testClient connects to the Redis of REDIS_URL, by default the local one;
// under TestOnCluster, to the shared Redis Cluster.
func testClient(t testing.TB) redis.UniversalClient {
	t.Helper()
	if onCluster(t) {
		return redistest.ClusterClient(t)
	}
	return redistest.Client(t)
}

// onCluster reports whether t runs under TestOnCluster.
func onCluster(t testing.TB) bool {
	return strings.HasPrefix(t.Name(), "TestOnCluster/")
}

// maxTestID bounds the user ids tests and benchmarks write, so that
// cleanup deletes keys by name instead of scanning a shared Redis.
const maxTestID = 1000

// newTestCache returns a Cache under a prefix of its own, whose keys are
// deleted when the test ends.
func newTestCache(t testing.TB, ttl time.Duration) (*Cache, redis.UniversalClient) {
	t.Helper()
	client := testClient(t)
	var b [6]byte
	rand.Read(b[:])
	c := New(client, Options{Prefix: "test:rediscache:" + hex.EncodeToString(b[:]) + ":users:", TTL: ttl})
	t.Cleanup(func() {
		// One key per UNLINK: a cluster refuses keys of several slots.
		_, _ = client.Pipelined(context.Background(), func(p redis.Pipeliner) error {
			for id := range int64(maxTestID + 1) {
				p.Unlink(context.Background(), c.Key(id))
			}
			return nil
		})
	})
	return c, client
}

func ptr[T any](v T) *T { return &v }

func sampleUser(id int64, v viswals.Version) viswals.SealedUser {
	return viswals.SealedUser{
		ID:          id,
		FirstName:   "Zoë",
		LastName:    `O'Brien, "Jr." <b>`,
		EmailSealed: "v1:Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXhxdXV4",
		EmailHash:   []byte{0, 1, 2, 250, 251, 252, 253, 254, 255, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13},
		CreatedAt:   time.UnixMilli(1600000000123).UTC(),
		Version:     v,
	}
}

func TestPutGetRoundTrip(t *testing.T) {
	t.Parallel()
	c, _ := newTestCache(t, time.Hour)
	ctx := context.Background()
	paris := time.FixedZone("CET", 3600)
	full := sampleUser(1, viswals.Version{Load: 1732550000000000000, Line: 2})
	full.DeletedAt = ptr(time.UnixMilli(1700000000999).In(paris))
	full.MergedAt = ptr(time.UnixMilli(1700000001000).UTC())
	full.ParentUserID = ptr(int64(7))
	nulls := sampleUser(2, viswals.Version{Load: 1, Line: 1})
	nulls.FirstName, nulls.LastName, nulls.EmailHash = "", "", nil
	unicode := sampleUser(3, viswals.Version{Load: -5, Line: 0})
	unicode.FirstName, unicode.LastName = "用户\u200b", "Ñúñez 🙂 \\ \t"
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{full, nulls, unicode}))

	for _, want := range []viswals.SealedUser{full, nulls, unicode} {
		got, err := c.Get(ctx, want.ID)
		require.NoError(t, err)
		// Times come back in UTC: compare instants, then the rest.
		assert.True(t, want.CreatedAt.Equal(got.CreatedAt))
		assert.Equal(t, want.DeletedAt == nil, got.DeletedAt == nil)
		if want.DeletedAt != nil {
			assert.True(t, want.DeletedAt.Equal(*got.DeletedAt))
			assert.Equal(t, time.UTC, got.DeletedAt.Location())
		}
		want.CreatedAt, got.CreatedAt = time.Time{}, time.Time{}
		want.DeletedAt, got.DeletedAt = nil, nil
		assert.Equal(t, want, got)
	}
}

func TestPutSetsTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, client := newTestCache(t, 90*time.Second)
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{sampleUser(1, viswals.Version{Load: 1, Line: 1})}))
	ttl, err := client.PTTL(ctx, c.Key(1)).Result()
	require.NoError(t, err)
	assert.InDelta(t, 90*time.Second, ttl, float64(5*time.Second))

	forever, client := newTestCache(t, 0)
	require.NoError(t, forever.Put(ctx, []viswals.SealedUser{sampleUser(1, viswals.Version{Load: 1, Line: 1})}))
	ttl, err = client.PTTL(ctx, forever.Key(1)).Result()
	require.NoError(t, err)
	assert.Equal(t, time.Duration(-1), ttl, "no expiry")
}

func TestPutKeepsNewestVersion(t *testing.T) {
	t.Parallel()
	v := func(load, line int64) viswals.Version { return viswals.Version{Load: load, Line: line} }
	tests := []struct {
		name   string
		writes []viswals.Version // in order, each its own Put
		want   viswals.Version
	}{
		{"newer replaces older", []viswals.Version{v(1, 1), v(1, 2)}, v(1, 2)},
		{"older never replaces newer", []viswals.Version{v(1, 2), v(1, 1)}, v(1, 2)},
		{"later load beats higher line", []viswals.Version{v(2, 1), v(1, 999)}, v(2, 1)},
		{"line compared numerically, not as text", []viswals.Version{v(1, 16), v(1, 9)}, v(1, 16)},
		{"negative load is older", []viswals.Version{v(0, 1), v(-1, 5)}, v(0, 1)},
		{"realistic loads", []viswals.Version{v(1732550000000000001, 1), v(1732550000000000000, 7)}, v(1732550000000000001, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c, _ := newTestCache(t, time.Minute)
			for _, w := range tt.writes {
				u := sampleUser(5, w)
				u.FirstName = "written at " + string(appendVersion(nil, w))
				require.NoError(t, c.Put(ctx, []viswals.SealedUser{u}))
			}
			got, err := c.Get(ctx, 5)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got.Version)
			assert.Equal(t, "written at "+string(appendVersion(nil, tt.want)), got.FirstName)
		})
	}
}

// Within one Put the newest version wins too, in either order.
func TestPutSameIDTwiceInOneCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newTestCache(t, time.Minute)
	old, cur := sampleUser(9, viswals.Version{Load: 1, Line: 1}), sampleUser(9, viswals.Version{Load: 1, Line: 2})
	cur.FirstName = "newest"
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{cur, old}))
	got, err := c.Get(ctx, 9)
	require.NoError(t, err)
	assert.Equal(t, "newest", got.FirstName)
}

// Put splits users into script calls of c.batch keys; the outcome must not
// depend on where the splits fall, also with one id in several calls.
func TestPutBatches(t *testing.T) {
	t.Parallel()
	for _, batch := range []int{1, 2, 3, 100} {
		t.Run(strconv.Itoa(batch), func(t *testing.T) {
			if onCluster(t) && batch > 1 {
				t.Skip("on a cluster every script call takes one key (New sets it)")
			}
			t.Parallel()
			ctx := context.Background()
			c, _ := newTestCache(t, time.Minute)
			c.batch = batch
			// Cached first: ids 1-5 at version 5.
			var first []viswals.SealedUser
			for id := int64(1); id <= 5; id++ {
				first = append(first, sampleUser(id, viswals.Version{Load: 1, Line: 5}))
			}
			require.NoError(t, c.Put(ctx, first))
			// Then: odd ids older (skipped), even ids newer, id 6 new, and
			// id 2 twice, the newest first.
			var second []viswals.SealedUser
			for id := int64(1); id <= 6; id++ {
				line := int64(4)
				if id%2 == 0 {
					line = 6
				}
				second = append(second, sampleUser(id, viswals.Version{Load: 1, Line: line}))
			}
			second = append(second, sampleUser(2, viswals.Version{Load: 1, Line: 5}))
			require.NoError(t, c.Put(ctx, second))

			want := map[int64]int64{1: 5, 2: 6, 3: 5, 4: 6, 5: 5, 6: 6}
			for id, line := range want {
				got, err := c.Get(ctx, id)
				require.NoError(t, err)
				assert.Equal(t, line, got.Version.Line, "user %d", id)
			}
		})
	}
}

func TestPutEqualVersionIsNoop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, client := newTestCache(t, time.Minute)
	first := sampleUser(1, viswals.Version{Load: 3, Line: 3})
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{first}))
	require.NoError(t, client.PExpire(ctx, c.Key(1), 30*time.Second).Err())

	again := first
	again.FirstName = "changed without a new version"
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{again}))
	got, err := c.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, first.FirstName, got.FirstName)
	ttl, err := client.PTTL(ctx, c.Key(1)).Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, ttl, 30*time.Second, "an equal version must not even refresh the TTL")
}

func TestPutReplacesForeignValue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, client := newTestCache(t, time.Minute)
	require.NoError(t, client.Set(ctx, c.Key(1), "not ours", 0).Err())
	require.NoError(t, client.HSet(ctx, c.Key(2), "not", "a string").Err())
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{
		sampleUser(1, viswals.Version{Load: 1, Line: 1}),
		sampleUser(2, viswals.Version{Load: 1, Line: 1}),
	}))
	for _, id := range []int64{1, 2} {
		_, err := c.Get(ctx, id)
		require.NoError(t, err, "user %d", id)
	}
}

func TestGetMiss(t *testing.T) {
	t.Parallel()
	c, _ := newTestCache(t, time.Minute)
	_, err := c.Get(context.Background(), 404)
	require.Error(t, err)
	assert.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(err))
	assert.NotErrorIs(t, err, ErrCorrupt)
}

func TestGetCorrupt(t *testing.T) {
	t.Parallel()
	value := func(u viswals.SealedUser) string { return string(encodeForTest(u)) }
	good := value(sampleUser(1, viswals.Version{Load: 1, Line: 1}))
	noEmail := sampleUser(1, viswals.Version{Load: 1, Line: 1})
	noEmail.EmailSealed = ""
	badName := sampleUser(1, viswals.Version{Load: 1, Line: 1})
	badName.FirstName = "\xff\xfe"
	tests := []struct{ name, value string }{
		{"not ours", "hello"},
		{"empty", ""},
		{"an older release's JSON", `{"version":"8000000000000001-8000000000000001","id":1,"email_address":"v1:x"}`},
		{"truncated", good[:len(good)-10]},
		{"trailing bytes", good + "x"},
		{"uppercase version", strings.ToUpper(good[:versionEnd]) + good[versionEnd:]},
		{"wrong id", value(sampleUser(2, viswals.Version{Load: 1, Line: 1}))},
		{"no email", value(noEmail)},
		{"invalid UTF-8", value(badName)},
		{"unknown flags", good[:len(good)-1] + "\x80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c, client := newTestCache(t, time.Minute)
			require.NoError(t, client.Set(ctx, c.Key(1), tt.value, 0).Err())
			_, err := c.Get(ctx, 1)
			require.ErrorIs(t, err, ErrCorrupt)
			assert.NotEqual(t, viswals.ENOTFOUND, viswals.ErrorCode(err))

			// The corrupt value is gone, so the caller's refill lands.
			require.NoError(t, c.Put(ctx, []viswals.SealedUser{sampleUser(1, viswals.Version{Load: 0, Line: 0})}))
			_, err = c.Get(ctx, 1)
			require.NoError(t, err)
		})
	}
}

func TestNoPlaintextEmailStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, client := newTestCache(t, time.Minute)
	u := sampleUser(1, viswals.Version{Load: 1, Line: 1})
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{u}))
	raw, err := client.Get(ctx, c.Key(1)).Result()
	require.NoError(t, err)
	assert.NotContains(t, raw, "@", "an email address in the cache")
	assert.Contains(t, raw, u.EmailSealed)
	assert.True(t, strings.HasPrefix(raw, valuePrefix), raw)
}

func TestUnreachableRedis(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{
		Addr:        "127.0.0.1:1",
		DialTimeout: 200 * time.Millisecond,
		MaxRetries:  -1,
	})
	t.Cleanup(func() { client.Close() })
	c := New(client, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	start := time.Now()
	_, err := c.Get(ctx, 1)
	assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "get: %v", err)
	assert.Equal(t, "redis is unavailable", viswals.ErrorMessage(err))
	err = c.Put(ctx, []viswals.SealedUser{sampleUser(1, viswals.Version{})})
	assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "put: %v", err)
	err = c.PutNew(ctx, []viswals.SealedUser{sampleUser(1, viswals.Version{})})
	assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "put new: %v", err)
	err = c.Ping(ctx)
	assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "ping: %v", err)
	assert.Less(t, time.Since(start), 3*time.Second)
}

// After a Redis restart or SCRIPT FLUSH the script is gone and EVALSHA
// fails with NOSCRIPT; Put loads it and runs again. A copy of the script
// with a unique comment is certainly not loaded yet, which tests that path
// without flushing the scripts of a server other tests share.
func TestPutLoadsMissingScript(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newTestCache(t, time.Minute)
	c.put = redis.NewScript(putSource + "-- " + rand.Text() + "\n")
	u := sampleUser(1, viswals.Version{Load: 1, Line: 1})
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{u}))
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{u}), "second put, script loaded")
	_, err := c.Get(ctx, 1)
	require.NoError(t, err)
}

func TestPutEmpty(t *testing.T) {
	t.Parallel()
	// No round trip: works even without a server.
	c := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), Options{})
	require.NoError(t, c.Put(context.Background(), nil))
}

func TestVersionOrderMatchesEncoding(t *testing.T) {
	t.Parallel()
	vals := []int64{-1 << 63, -2, -1, 0, 1, 9, 10, 15, 16, 255, 256, 1732550000000000000, 1<<63 - 1}
	for _, a := range vals {
		for _, b := range vals {
			va, vb := viswals.Version{Load: a, Line: b}, viswals.Version{Load: b, Line: a}
			sa, sb := string(appendVersion(nil, va)), string(appendVersion(nil, vb))
			assert.Equal(t, va.Less(vb), sa < sb, "%v vs %v", va, vb)
			got, ok := parseVersion([]byte(sa))
			require.True(t, ok)
			assert.Equal(t, va, got)
		}
	}
}

func TestScriptOffsets(t *testing.T) {
	t.Parallel()
	assert.Contains(t, putSource, "'GETRANGE', key, 0, "+strconv.Itoa(versionEnd-1)+")")
	assert.Contains(t, putSource, "string.sub(cur, 1, "+strconv.Itoa(len(valuePrefix))+") == '"+valuePrefix+"'")
	assert.Contains(t, putSource, "string.sub(cur, "+strconv.Itoa(len(valuePrefix)+1)+", "+strconv.Itoa(versionEnd)+")")
}

func encodeForTest(u viswals.SealedUser) []byte {
	return appendValue(nil, &u)
}

func FuzzDecode(f *testing.F) {
	for _, u := range []viswals.SealedUser{
		sampleUser(1, viswals.Version{Load: 1, Line: 2}),
		func() viswals.SealedUser {
			u := sampleUser(1<<62, viswals.Version{Load: -1, Line: 1 << 40})
			u.DeletedAt, u.ParentUserID = ptr(time.Unix(0, 1).UTC()), ptr(int64(3))
			return u
		}(),
	} {
		f.Add(encodeForTest(u))
	}
	f.Add([]byte(`{"version":"8000000000000001-8000000000000002","id":1,"email_address":"x","created_at":"2000-01-01T00:00:00+05:00"}`))
	f.Add([]byte(valuePrefix + "8000000000000001-8000000000000002"))
	f.Fuzz(func(t *testing.T, v []byte) {
		u, err := decodeValue(v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// What decodes must survive a write and a read unchanged.
		again := encodeForTest(u)
		u2, err := decodeValue(again)
		require.NoError(t, err, "re-encoded %q", again)
		require.Equal(t, u, u2)
	})
}
