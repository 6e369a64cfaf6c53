// Package rediscache is the read cache of users: key "<prefix><id>"
// (prefix "users:" by default) holding the user with its email sealed, in
// a compact binary form (value.go), with a TTL. Writes are ordered by
// version, so consumers writing the same user out of order still leave
// the newest one cached.
package rediscache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/viswals/viswals"
)

// DefaultPrefix makes the keys users:{id}.
const DefaultPrefix = "users:"

// putScript writes each of its keys unless the key already holds a value
// with the same or a newer version. A current value without the version
// prefix (not ours, damaged, or not a string) is replaced.
//
// One call covers many keys because the fixed cost of a script call
// dominates: per user, a call per key costs Redis much more CPU than a call
// per many keys (BenchmarkPut's sub-benchmarks; docs/benchmarks.md). Only
// GETRANGE reads the current value: the 36 bytes that hold the version.
//
// Versions are fixed-width lowercase hex, so string order is version
// order. (Redis compares Lua strings with strcoll: the C locale compares
// bytes, and glibc's locales order digits before a-f and skip the dash,
// which sits at the same place in both strings, so the order is the same.)
//
// KEYS: the users' keys. ARGV: value and version of each key in turn, then
// the TTL in milliseconds (0: none). Returns how many keys it wrote.
// The offsets are those of valuePrefix and versionEnd (TestScriptOffsets).
var putScript = redis.NewScript(putSource)

const putSource = `
local ttl = ARGV[#ARGV]
local written = 0
for i, key in ipairs(KEYS) do
  local value, version = ARGV[2*i-1], ARGV[2*i]
  local cur = redis.pcall('GETRANGE', key, 0, 35)
  if not (type(cur) == 'string' and string.sub(cur, 1, 3) == 'u2:'
          and string.sub(cur, 4, 36) >= version) then
    if ttl == '0' then
      redis.call('SET', key, value)
    else
      redis.call('SET', key, value, 'PX', ttl)
    end
    written = written + 1
  end
end
return written
`

// dropScript deletes a key only if it still holds the given value: Get uses
// it to clear a corrupt value without racing a concurrent good write.
var dropScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Options configure a Cache.
type Options struct {
	Prefix string        // key prefix; "" means DefaultPrefix
	TTL    time.Duration // expiry of every written key; 0 means none
}

// scriptBatch is how many users one put script call writes on a single
// Redis server: large enough to amortise the call, small enough that the
// script (which blocks Redis) runs for about a millisecond.
const scriptBatch = 100

// Cache is the users cache. It is safe for concurrent use.
type Cache struct {
	client redis.UniversalClient
	put    *redis.Script // putScript; a test swaps in a never-loaded copy
	batch  int           // users per put script call
	prefix string
	ttl    time.Duration // whole milliseconds (PX); 0 for no expiry
}

// New returns a Cache over client. It does not contact Redis.
func New(client redis.UniversalClient, opts Options) *Cache {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	ms := int64(0)
	if opts.TTL > 0 {
		ms = max(opts.TTL.Milliseconds(), 1) // PX has millisecond resolution
	}
	// A script's keys must live on one node. Cluster and Ring clients
	// shard by key, so there each call carries one key.
	batch := 1
	if _, single := client.(*redis.Client); single {
		batch = scriptBatch
	}
	return &Cache{client: client, put: putScript, batch: batch, prefix: opts.Prefix, ttl: time.Duration(ms) * time.Millisecond}
}

// Key returns the Redis key of user id.
func (c *Cache) Key(id int64) string {
	return c.prefix + strconv.FormatInt(id, 10)
}

// Put writes users in one pipelined round trip. A user whose cached
// version is the same or newer is left as it is, so Put may be called
// with stale or repeated users in any order.
func (c *Cache) Put(ctx context.Context, users []viswals.SealedUser) error {
	if len(users) == 0 {
		return nil
	}
	// The script arguments of every call, built once: Put may run the
	// pipeline twice.
	values := encodeValues(users)
	ttlMS := strconv.FormatInt(c.ttl.Milliseconds(), 10) // the script's PX argument, "0" for none
	keys := make([]string, len(users))
	args := make([]any, 0, 2*len(users)+(len(users)/c.batch+1))
	type call struct{ keys, args int } // ends of the call's keys and args
	var calls []call
	for i := range users {
		v := values[i]
		keys[i] = c.Key(users[i].ID)
		args = append(args, v, v[len(valuePrefix):versionEnd])
		if (i+1)%c.batch == 0 || i == len(users)-1 {
			args = append(args, ttlMS)
			calls = append(calls, call{keys: i + 1, args: len(args)})
		}
	}

	run := func() error {
		_, err := c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			k, a := 0, 0
			for _, cl := range calls {
				c.put.EvalSha(ctx, p, keys[k:cl.keys], args[a:cl.args]...)
				k, a = cl.keys, cl.args
			}
			return nil
		})
		return err
	}
	err := run()
	if isNoScript(err) {
		// First use, or Redis restarted or flushed its scripts: load the
		// script and run again. Rerunning is safe, writes are idempotent.
		if err := c.put.Load(ctx, c.client).Err(); err != nil {
			return unavailable("put: load script", err)
		}
		err = run()
	}
	if err != nil {
		return unavailable(fmt.Sprintf("put %d users", len(users)), err)
	}
	return nil
}

// PutNew writes users that did not exist before their write to the store
// (postgres.Store.UpsertBatch's inserted), in one pipelined round trip of
// SET ... NX: an entry already there can only hold the same or a newer
// version (a read that filled it, or a later update), so it is kept.
// About three times cheaper for Redis than Put's version check.
func (c *Cache) PutNew(ctx context.Context, users []viswals.SealedUser) error {
	if len(users) == 0 {
		return nil
	}
	values := encodeValues(users)
	_, err := c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range users {
			p.SetNX(ctx, c.Key(users[i].ID), values[i], c.ttl)
		}
		return nil
	})
	if err != nil {
		return unavailable(fmt.Sprintf("put %d new users", len(users)), err)
	}
	return nil
}

// encodeValues returns the cached value of each user, all in one buffer.
func encodeValues(users []viswals.SealedUser) [][]byte {
	buf := make([]byte, 0, len(users)*160)
	ends := make([]int, len(users))
	for i := range users {
		buf = appendValue(buf, &users[i])
		ends[i] = len(buf)
	}
	// Sliced once it is full, because it moves while it grows.
	values := make([][]byte, len(users))
	start := 0
	for i, end := range ends {
		values[i] = buf[start:end:end]
		start = end
	}
	return values
}

// Get returns the cached user id. A miss is an ENOTFOUND error; a value
// that cannot be decoded wraps ErrCorrupt and is removed, so that the
// caller's Put of the user read from Postgres lands; a Redis failure is
// an EUNAVAILABLE error.
func (c *Cache) Get(ctx context.Context, id int64) (viswals.SealedUser, error) {
	v, err := c.client.Get(ctx, c.Key(id)).Bytes()
	return c.decode(ctx, id, v, err)
}

// GetMany is Get for many ids in one pipelined round trip: for each id, in
// order, the user or the error Get would have returned. The API uses it
// to share round trips between concurrent reads.
func (c *Cache) GetMany(ctx context.Context, ids []int64) ([]viswals.SealedUser, []error) {
	users := make([]viswals.SealedUser, len(ids))
	errs := make([]error, len(ids))
	cmds := make([]*redis.StringCmd, len(ids))
	// One GET per key rather than MGET: keys of one MGET must share a
	// hash slot on a Redis Cluster.
	_, _ = c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, c.Key(id))
		}
		return nil
	})
	for i, id := range ids {
		v, err := cmds[i].Bytes()
		users[i], errs[i] = c.decode(ctx, id, v, err)
	}
	return users, errs
}

// decode turns the reply to a GET of user id into the user or Get's error.
func (c *Cache) decode(ctx context.Context, id int64, v []byte, err error) (viswals.SealedUser, error) {
	key := c.Key(id)
	if errors.Is(err, redis.Nil) {
		return viswals.SealedUser{}, viswals.Errorf(viswals.ENOTFOUND, "user %d is not cached", id)
	}
	if err != nil {
		return viswals.SealedUser{}, unavailable("get "+key, err)
	}
	u, err := decodeValue(v)
	if err == nil && u.ID != id {
		err = fmt.Errorf("%w: holds user %d", ErrCorrupt, u.ID)
	}
	if err != nil {
		// Best effort: if this fails the value expires with its TTL.
		_ = dropScript.Run(ctx, c.client, []string{key}, v).Err()
		return viswals.SealedUser{}, fmt.Errorf("rediscache: get %s: %w", key, err)
	}
	return u, nil
}

// Delete removes the cached users ids, those that are cached, in one
// pipelined round trip. It is for when a cached user may be older than
// the stored one and the newest is not at hand: the next read misses and
// fills the entry from Postgres.
func (c *Cache) Delete(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	// One DEL per key: keys of one multi-key DEL must share a hash slot
	// on a Redis Cluster.
	_, err := c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Del(ctx, c.Key(id))
		}
		return nil
	})
	if err != nil {
		return unavailable(fmt.Sprintf("delete %d users", len(ids)), err)
	}
	return nil
}

// DeleteAll removes every cached user (every key with the prefix) and
// returns how many it removed. It walks the keyspace with SCAN, on every
// master of a cluster, so its cost grows with the number of keys: it is
// for recovering from an outage too long to track which users it missed.
func (c *Cache) DeleteAll(ctx context.Context) (int, error) {
	var mu sync.Mutex
	n := 0
	drop := func(ctx context.Context, client redis.Cmdable) error {
		iter := client.Scan(ctx, 0, c.prefix+"*", 1000).Iterator()
		var keys []string
		flush := func() error {
			if len(keys) == 0 {
				return nil
			}
			// One key per UNLINK: a cluster refuses keys of several slots.
			_, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
			mu.Lock()
			n += len(keys)
			mu.Unlock()
			keys = keys[:0]
			return err
		}
		for iter.Next(ctx) {
			if keys = append(keys, iter.Val()); len(keys) == 1000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	}
	var err error
	if cluster, ok := c.client.(*redis.ClusterClient); ok {
		err = cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return drop(ctx, node) })
	} else {
		err = drop(ctx, c.client)
	}
	if err != nil {
		return n, unavailable("delete all users", err)
	}
	return n, nil
}

// Ping reports whether Redis answers: every master, on a cluster, since
// each holds a share of the keys.
func (c *Cache) Ping(ctx context.Context) error {
	var err error
	if cluster, ok := c.client.(*redis.ClusterClient); ok {
		err = cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return node.Ping(ctx).Err() })
	} else {
		err = c.client.Ping(ctx).Err()
	}
	if err != nil {
		return unavailable("ping", err)
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// unavailable wraps a Redis failure: callers see code EUNAVAILABLE and a
// message without internals; errors.Is still reaches the cause.
func unavailable(op string, err error) error {
	if redis.HasErrorPrefix(err, "MOVED") {
		// A single-server client of a cluster node: Connect could not
		// ask the node at start.
		op += " (Redis answered MOVED: REDIS_CONN_URL names a node of a Redis Cluster but the client was made for a single server; list the cluster's nodes in REDIS_CONN_URL, comma-separated, or restart the consumer while the node answers)"
	}
	return fmt.Errorf("rediscache: %s: %w (%w)", op, viswals.Errorf(viswals.EUNAVAILABLE, "redis is unavailable"), err)
}
