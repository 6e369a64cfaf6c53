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

func TestDelete(t *testing.T) {
	t.Parallel()
	c, _ := newTestCache(t, 0)
	ctx := context.Background()
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{sampleUser(1, viswals.Version{Load: 1, Line: 1}), sampleUser(2, viswals.Version{Load: 1, Line: 2})}))

	require.NoError(t, c.Delete(ctx, []int64{1, 3})) // 3 is not cached: no error
	_, err := c.Get(ctx, 1)
	assert.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(err), "deleted user 1 is still cached")
	_, err = c.Get(ctx, 2)
	assert.NoError(t, err, "user 2 was not deleted")

	// After a delete an older version may be cached again: the next writer
	// decides, as on a miss.
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{sampleUser(1, viswals.Version{Load: 0, Line: 9})}))
	got, err := c.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, viswals.Version{Load: 0, Line: 9}, got.Version)

	require.NoError(t, c.Delete(ctx, nil))
}

func TestDeleteUnreachable(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	err := New(client, Options{}).Delete(context.Background(), []int64{1})
	assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "delete: %v", err)
}

func TestDeleteAll(t *testing.T) {
	t.Parallel()
	c, client := newTestCache(t, 0)
	ctx := context.Background()
	var users []viswals.SealedUser
	for id := int64(1); id <= 2500; id++ { // more than one batch of deletes
		users = append(users, sampleUser(id, viswals.Version{Load: 1, Line: id}))
	}
	require.NoError(t, c.Put(ctx, users))
	other := c.prefix[:len(c.prefix)-len("users:")] + "other"
	require.NoError(t, client.Set(ctx, other, "kept", 0).Err())
	t.Cleanup(func() { client.Del(context.Background(), other) })

	n, err := c.DeleteAll(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2500, n)
	_, err = c.Get(ctx, 1)
	assert.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(err))
	assert.Equal(t, "kept", client.Get(ctx, other).Val(), "a key outside the prefix was deleted")
}
