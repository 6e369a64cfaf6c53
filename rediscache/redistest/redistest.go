// Package redistest gives tests a client of a real Redis and a key prefix
// of their own on it.
//
// The server is REDIS_URL, or redis://127.0.0.1:6379/0.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/viswals/viswals/internal/testenv"
)

// DefaultURL is the server used when REDIS_URL is not set.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL returns the test server's URL.
func URL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Client returns a client of the test server, closed when the test ends.
// When the server does not answer, the test is skipped under -short and
// fails otherwise (see internal/testenv): a missing server must not pass
// the full suite as green.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(URL())
	if err != nil {
		t.Fatalf("redistest: REDIS_URL: %v", err)
	}
	testenv.Service(t, "Redis", opts.Addr)
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	// Generous: a first connection on a starved machine can be slow, and
	// testenv.Service has already told an absent server apart.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("redistest: Redis does not answer at %s (set REDIS_URL): %v", opts.Addr, err)
	}
	return client
}

// Prefix returns a key prefix unique to this test ("test:<hex>:users:");
// the keys under it are deleted when the test ends, on every master of a
// cluster.
func Prefix(t testing.TB, client redis.UniversalClient) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "test:" + hex.EncodeToString(b[:]) + ":users:"
	t.Cleanup(func() {
		ctx := context.Background()
		drop := func(ctx context.Context, c redis.UniversalClient) error {
			iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			var keys []string
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			// One key per UNLINK: a cluster refuses keys of several slots.
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
			return err
		}
		if cluster, ok := client.(*redis.ClusterClient); ok {
			_ = cluster.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return drop(ctx, n) })
			return
		}
		_ = drop(ctx, client)
	})
	return prefix
}
