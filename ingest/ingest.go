// Package ingest is the consumer's flow for one batch of users:
// validate → seal the emails → upsert into Postgres (the system of record) →
// write the changed users to the Redis cache. The message plumbing (decode,
// ack, dead letters) lives in message.go; this file knows nothing of queues.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/viswals/viswals"
)

// Store is the system of record.
type Store interface {
	// UpsertBatch writes users whose version is newer than the stored one
	// and returns those whose content changed; inserted reports that none
	// of them existed before.
	UpsertBatch(ctx context.Context, users []viswals.SealedUser) (changed []viswals.SealedUser, inserted bool, err error)
}

// Cache is the read cache. It is optional: its failures never stop ingestion.
type Cache interface {
	// Put writes users unless a newer version is cached.
	Put(ctx context.Context, users []viswals.SealedUser) error
	// PutNew writes users that did not exist before, more cheaply: it
	// keeps any entry already there, which can only be as new or newer.
	PutNew(ctx context.Context, users []viswals.SealedUser) error
}

// invalidator is a Cache that can also drop entries (rediscache.Cache
// can): see Ingester.ingest and staleSet for when it must.
type invalidator interface {
	Delete(ctx context.Context, ids []int64) error
	DeleteAll(ctx context.Context) (int, error)
}

// Sealer encrypts a record's email.
type Sealer interface {
	Seal(r viswals.Record) (viswals.SealedUser, error)
}

// Rejected is a record that cannot be stored, with the reason.
type Rejected struct {
	Record viswals.Record
	Reason string
}

// Options tune an Ingester; zero values take the defaults.
type Options struct {
	// CacheTimeout bounds one cache write, so a dead Redis costs little.
	CacheTimeout time.Duration
	// RetryMin and RetryMax bound the backoff while the store is unavailable.
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
	Metrics            *Metrics
}

// Ingester stores batches of users. Safe for concurrent use.
type Ingester struct {
	store  Store
	cache  Cache
	sealer Sealer
	opts   Options
	// cacheBreaker skips cache writes for a while after one failed, so an
	// unreachable Redis does not add a timeout to every batch.
	cacheBreaker breaker
	// stale holds the users whose cache writes failed or were skipped.
	stale staleSet
}

// New returns an Ingester. cache may be nil.
func New(store Store, cache Cache, sealer Sealer, opts Options) *Ingester {
	if opts.CacheTimeout == 0 {
		opts.CacheTimeout = 2 * time.Second
	}
	if opts.RetryMin == 0 {
		opts.RetryMin = 100 * time.Millisecond
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	return &Ingester{store: store, cache: cache, sealer: sealer, opts: opts, cacheBreaker: breaker{cooldown: 5 * time.Second}}
}

// Ingest validates, seals and stores recs. It returns the records that were
// refused, with reasons; every other record is committed when it returns nil.
// While the store is unavailable it retries with backoff until ctx is done,
// so the caller's message stays unacknowledged and nothing is lost.
func (in *Ingester) Ingest(ctx context.Context, recs []viswals.Record) ([]Rejected, error) {
	return in.ingest(ctx, recs, false)
}

// ingest is Ingest for a message that may have been processed before
// (redelivered). The cache is written after the commit and the message
// acked after that, so a consumer that dies in between leaves the users
// committed but not cached; on the redelivery the upsert changes nothing
// (same versions), and the cache would keep whatever older version it
// held. So for a redelivered batch the entries of the users it did not
// change are dropped: the next read fills them from Postgres.
func (in *Ingester) ingest(ctx context.Context, recs []viswals.Record, redelivered bool) ([]Rejected, error) {
	start := time.Now()
	sealed := make([]viswals.SealedUser, 0, len(recs))
	var rejected []Rejected
	for i := range recs {
		if err := recs[i].Validate(); err != nil {
			rejected = append(rejected, Rejected{Record: recs[i], Reason: err.Error()})
			continue
		}
		s, err := in.sealer.Seal(recs[i])
		if err != nil {
			return nil, fmt.Errorf("seal user %d: %w", recs[i].ID, err)
		}
		sealed = append(sealed, s)
	}

	changed, inserted, refused, err := in.upsert(ctx, sealed)
	if err != nil {
		return nil, err
	}
	rejected = append(rejected, refused...)
	in.opts.Metrics.observeBatch(len(sealed)-len(refused), len(rejected), time.Since(start))

	if len(changed) > 0 && in.cache != nil {
		in.putCache(ctx, changed, inserted)
	}
	if redelivered && in.cache != nil {
		in.dropUnchanged(ctx, sealed, changed)
	}
	return rejected, nil
}

// dropUnchanged deletes the cache entries of the users of batch that are
// not in changed (see ingest). Like putCache it never fails ingestion.
func (in *Ingester) dropUnchanged(ctx context.Context, batch, changed []viswals.SealedUser) {
	inv, ok := in.cache.(invalidator)
	if !ok {
		return
	}
	written := make(map[int64]bool, len(changed))
	for _, u := range changed {
		written[u.ID] = true
	}
	ids := make([]int64, 0, len(batch)-len(changed))
	for _, u := range batch {
		if !written[u.ID] {
			ids = append(ids, u.ID)
		}
	}
	if !in.cacheBreaker.allow() {
		in.stale.addIDs(ids)
		in.drainStaleLater()
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.opts.CacheTimeout)
	defer cancel()
	if err := inv.Delete(ctx, ids); err != nil {
		in.stale.addIDs(ids)
		in.drainStaleLater()
		in.cacheBreaker.fail()
		in.opts.Logger.Warn("cache invalidation failed; continuing without cache", "users", len(ids), "err", err)
		in.opts.Metrics.CacheErrors.Inc()
	}
}

// putCache writes to Redis after the commit (with PutNew when the users
// were inserted). A failure is logged and the breaker opens: reads fall
// back to Postgres and refill the cache.
func (in *Ingester) putCache(ctx context.Context, users []viswals.SealedUser, inserted bool) {
	if !in.cacheBreaker.allow() {
		in.stale.addUsers(users)
		in.drainStaleLater()
		return
	}
	// Entries the cache missed go first: it may have come back with
	// older versions of them.
	err := in.dropStale(ctx)
	if err == nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.opts.CacheTimeout)
		if inserted {
			err = in.cache.PutNew(pctx, users)
		} else {
			err = in.cache.Put(pctx, users)
		}
		cancel()
	}
	if err != nil {
		// A write that timed out may still land; the version guard keeps
		// it from replacing anything newer, and the stale set from
		// outliving a newer write that was skipped.
		in.stale.addUsers(users)
		in.drainStaleLater()
		in.cacheBreaker.fail()
		in.opts.Logger.Warn("cache write failed; continuing without cache", "users", len(users), "err", err)
		in.opts.Metrics.CacheErrors.Inc()
		return
	}
	in.cacheBreaker.succeed()
}

// upsert writes users, retrying while the store is unavailable. A
// batch the store refuses as invalid is retried one user at a time so that
// one bad user cannot keep the good ones out.
func (in *Ingester) upsert(ctx context.Context, users []viswals.SealedUser) (changed []viswals.SealedUser, inserted bool, refused []Rejected, err error) {
	if len(users) == 0 {
		return nil, false, nil, nil
	}
	changed, inserted, err = in.upsertUntilAvailable(ctx, users)
	if err == nil || viswals.ErrorCode(err) != viswals.EINVALID {
		return changed, inserted, nil, err
	}
	in.opts.Logger.Warn("batch refused by the store; retrying one by one", "users", len(users), "err", err)
	for _, u := range users {
		c, _, err := in.upsertUntilAvailable(ctx, []viswals.SealedUser{u})
		switch {
		case err == nil:
			changed = append(changed, c...)
		case viswals.ErrorCode(err) == viswals.EINVALID:
			refused = append(refused, Rejected{Record: viswals.Record{User: viswals.User{ID: u.ID}, Version: u.Version}, Reason: viswals.ErrorMessage(err)})
		default:
			return nil, false, nil, err
		}
	}
	return changed, false, refused, nil
}

func (in *Ingester) upsertUntilAvailable(ctx context.Context, users []viswals.SealedUser) ([]viswals.SealedUser, bool, error) {
	backoff := in.opts.RetryMin
	for {
		changed, inserted, err := in.store.UpsertBatch(ctx, users)
		if err == nil || viswals.ErrorCode(err) == viswals.EINVALID {
			return changed, inserted, err
		}
		in.opts.Metrics.StoreRetries.Inc()
		in.opts.Logger.Warn("store unavailable; retrying", "backoff", backoff, "err", err)
		// Jitter keeps several consumers from retrying in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return nil, false, errors.Join(fmt.Errorf("upsert batch: %w", err), ctx.Err())
		case <-time.After(wait):
		}
		backoff = min(backoff*2, in.opts.RetryMax)
	}
}
