package rediscache

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/rediscache/redistest"
)

// With REDIS_SENTINEL_MASTER, REDIS_CONN_URL names the Sentinels and the
// cache reaches the master they name.
func TestConnectSentinel(t *testing.T) {
	testenv.SkipShort(t, "starts a redis-server and a Redis Sentinel of its own")
	t.Parallel()
	s, err := redistest.StartSentinel(t.TempDir(), "viswals")
	if err != nil {
		testenv.Missing(t, "a Redis Sentinel", err)
	}
	t.Cleanup(s.Stop)
	ctx := context.Background()
	client, mode, err := Connect(ctx, Conn{URL: "redis://" + s.SentinelAt.Addr() + "/0", SentinelMaster: "viswals"})
	require.NoError(t, err)
	defer client.Close()
	assert.Equal(t, Sentinel, mode)
	c := New(client, Options{})
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{sampleUser(1, viswals.Version{Load: 1, Line: 1})}))
	got, err := c.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, int64(1), got.ID)
	// The write is on the master the Sentinel names.
	direct := redis.NewClient(&redis.Options{Addr: s.Master.Addr()})
	defer direct.Close()
	assert.Equal(t, int64(1), direct.Exists(ctx, c.Key(1)).Val())
	require.NoError(t, c.Ping(ctx))
}
