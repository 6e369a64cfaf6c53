package rediscache

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
)

func TestGetManyAnswersLikeGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, client := newTestCache(t, time.Minute)
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{sampleUser(1, viswals.Version{Load: 1, Line: 1}), sampleUser(3, viswals.Version{Load: 1, Line: 3})}))
	require.NoError(t, client.Set(ctx, c.Key(4), "garbage", 0).Err())

	users, errs := c.GetMany(ctx, []int64{3, 2, 1, 4})
	require.Len(t, users, 4)
	require.Len(t, errs, 4)
	assert.NoError(t, errs[0])
	assert.Equal(t, int64(3), users[0].ID)
	assert.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(errs[1]), "a miss is ENOTFOUND")
	assert.NoError(t, errs[2])
	assert.Equal(t, int64(1), users[2].ID)
	assert.ErrorIs(t, errs[3], ErrCorrupt)
	n, err := client.Exists(ctx, c.Key(4)).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the corrupt value is dropped, as Get does")
}

func TestGetManyRedisDown(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	c := New(client, Options{})
	_, errs := c.GetMany(context.Background(), []int64{1, 2})
	for _, err := range errs {
		assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err))
	}
}
