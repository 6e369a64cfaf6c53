// Package ingest is the consumer's flow for one batch of users:
// validate → seal the emails → upsert into Postgres (the system of record) →
// write the changed users to the Redis cache. It knows nothing of queues:
// a batch goes in, the records it refused come out.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/breaker"
)

// Store is the system of record.
type Store interface {
	// UpsertCounted writes users whose version is newer than the stored
	// one and returns those whose content changed; inserted reports that
	// none of them existed before. With a receipt (nil: none) it counts
	// the message's rows into their load in the same transaction, once
	// per message, and fills in the receipt's results.
	UpsertCounted(ctx context.Context, users []viswals.SealedUser, rc *viswals.Receipt) (changed []viswals.SealedUser, inserted bool, err error)
	// RecordSummary records a load's summary; fresh is false when it was
	// recorded before.
	RecordSummary(ctx context.Context, sum viswals.LoadSummary) (rec viswals.LoadRecord, fresh bool, err error)
	// GetMany returns the stored users of ids (those that exist).
	GetMany(ctx context.Context, ids []int64) ([]viswals.SealedUser, error)
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
// can): see Ingester.refreshCache and staleSet for when it must.
type invalidator interface {
	Delete(ctx context.Context, ids []int64) error
	DeleteAll(ctx context.Context) (int, error)
}

// Sealer encrypts a record's email.
type Sealer interface {
	Seal(r viswals.Record) (viswals.SealedUser, error)
}

// Options tune an Ingester; zero values take the defaults.
type Options struct {
	// CacheTimeout bounds one cache write, so a dead Redis costs little.
	CacheTimeout time.Duration
	// CacheCooldown is how long cache writes are skipped after one failed
	// (and how often the cache is probed while it stays away).
	CacheCooldown time.Duration
	// RetryMin and RetryMax bound the backoff while the store is unavailable.
	RetryMin, RetryMax time.Duration
	// MaxVersionSkew is how far ahead of Now a record's version may be
	// (default viswals.DefaultMaxVersionSkew); records beyond are refused.
	MaxVersionSkew time.Duration
	Now            func() time.Time // the clock (default time.Now)
	Logger         *slog.Logger
	Metrics        *Metrics
	// OnLoad, when set, is told a load's record after each commit that
	// counted rows into it, and after its summary is recorded.
	OnLoad func(viswals.LoadRecord)
}

// Ingester stores batches of users. Safe for concurrent use.
type Ingester struct {
	store  Store
	cache  Cache
	sealer Sealer
	opts   Options
	// cacheBreaker skips cache writes for a while after one failed, so an
	// unreachable Redis does not add a timeout to every batch.
	cacheBreaker breaker.Breaker
	// stale holds the users whose cache writes failed or were skipped.
	stale staleSet
	// recent holds the users written to the cache lately, which a
	// failover of Redis may lose.
	recent recentWrites
}

// New returns an Ingester. cache may be nil.
func New(store Store, cache Cache, sealer Sealer, opts Options) *Ingester {
	if opts.CacheTimeout == 0 {
		opts.CacheTimeout = 2 * time.Second
	}
	if opts.CacheCooldown == 0 {
		opts.CacheCooldown = 5 * time.Second
	}
	if opts.RetryMin == 0 {
		opts.RetryMin = 100 * time.Millisecond
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 5 * time.Second
	}
	if opts.MaxVersionSkew == 0 {
		opts.MaxVersionSkew = viswals.DefaultMaxVersionSkew
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.OnLoad == nil {
		opts.OnLoad = func(viswals.LoadRecord) {}
	}
	return &Ingester{store: store, cache: cache, sealer: sealer, opts: opts}
}

// Ingest validates, seals and stores recs and returns the records it
// refused (invalid, or versioned more than MaxVersionSkew in the future),
// by position, with reasons; every other record is committed when
// it returns nil. While the store is unavailable it retries with backoff
// until ctx is done, so the caller can hand the batch back and nothing is
// lost. seenBefore says the batch may have been ingested already (a
// message delivered again).
//
// The cache is written after the commit, so a batch whose commit cannot be
// vouched for may leave the cache holding older versions than Postgres:
// one seen before (its first ingestion may have died between the commit
// and the cache write), and one whose write failed and was retried (the
// failed attempt may have committed: the retry then changes nothing and
// would write nothing to the cache). For such a batch the users it did not
// change are read back from the store and cached as they are stored.
func (in *Ingester) Ingest(ctx context.Context, recs []viswals.Record, seenBefore bool) ([]viswals.Refusal, error) {
	return in.IngestCounted(ctx, recs, seenBefore, nil)
}

// IngestCounted is Ingest that also counts the batch's rows into their load
// (see Store.UpsertCounted): rc names the load and the message, and holds
// the results when it returns nil. rc nil counts nothing.
func (in *Ingester) IngestCounted(ctx context.Context, recs []viswals.Record, seenBefore bool, rc *viswals.Receipt) ([]viswals.Refusal, error) {
	return in.ingest(ctx, recs, seenBefore, false, rc)
}

// IngestSealed is Ingest for records whose emails the producer sealed
// already (with the same keys): each is stored as it came, once it is
// checked to open, under its own user id, to a valid email; one that does
// not is refused with the reason. The broker never held the plaintext.
// It counts into rc as IngestCounted does.
func (in *Ingester) IngestSealed(ctx context.Context, recs []viswals.Record, seenBefore bool, rc *viswals.Receipt) ([]viswals.Refusal, error) {
	return in.ingest(ctx, recs, seenBefore, true, rc)
}

// Opener opens emails sealed elsewhere: *emailcrypt.Keyring is one. The
// Sealer given to New must be one for IngestSealed.
type Opener interface {
	Decrypt(userID int64, sealed string) (string, error)
	Hash(plaintext string) []byte
}

// adopt returns r, whose email is sealed, as stored; refuse says why it
// cannot be.
func (in *Ingester) adopt(r viswals.Record) (s viswals.SealedUser, refuse error) {
	op, ok := in.sealer.(Opener)
	if !ok {
		return s, viswals.Errorf(viswals.EINVALID, "email_address is sealed, and this consumer cannot open sealed emails")
	}
	plain, err := op.Decrypt(r.ID, r.Email)
	if err != nil {
		return s, viswals.Errorf(viswals.EINVALID, "email_address is sealed but does not open with this consumer's keys: %v", err)
	}
	opened := r
	opened.Email = plain
	if err := opened.Validate(); err != nil {
		return s, err
	}
	return viswals.SealedUser{
		ID: r.ID, FirstName: r.FirstName, LastName: r.LastName,
		EmailSealed: r.Email, EmailHash: op.Hash(plain),
		CreatedAt: r.CreatedAt, DeletedAt: r.DeletedAt, MergedAt: r.MergedAt, ParentUserID: r.ParentUserID,
		Version: r.Version,
	}, nil
}

func (in *Ingester) ingest(ctx context.Context, recs []viswals.Record, seenBefore, emailsSealed bool, rc *viswals.Receipt) ([]viswals.Refusal, error) {
	start := time.Now()
	sealed := make([]viswals.SealedUser, 0, len(recs))
	index := make([]int, 0, len(recs)) // sealed[i] is recs[index[i]]
	var refused []viswals.Refusal
	now := in.opts.Now()
	for i := range recs {
		err := recs[i].Version.CheckNotAhead(now, in.opts.MaxVersionSkew)
		var s viswals.SealedUser
		switch {
		case err != nil:
		case emailsSealed:
			s, err = in.adopt(recs[i])
		default:
			if err = recs[i].Validate(); err == nil {
				if s, err = in.sealer.Seal(recs[i]); err != nil {
					// Not the record's fault (the system's randomness
					// failed): the caller retries the whole batch later.
					return nil, fmt.Errorf("seal user %d: %w", recs[i].ID, err)
				}
			}
		}
		if err != nil {
			refused = append(refused, viswals.Refusal{Index: i, Reason: err.Error()})
			continue
		}
		sealed = append(sealed, s)
		index = append(index, i)
	}

	if rc != nil {
		// On top of those the caller refused already (a message it could
		// not decode).
		rc.Refused += int64(len(refused))
	}
	res, err := in.upsert(ctx, sealed, rc)
	if err != nil {
		return nil, err
	}
	for _, r := range res.refused {
		refused = append(refused, viswals.Refusal{Index: index[r.Index], Reason: r.Reason})
	}
	in.opts.Metrics.observeBatch(len(sealed)-len(res.refused), time.Since(start))
	if rc != nil {
		if rc.Counted {
			in.opts.Metrics.observeTally(rc.Tally)
		}
		in.opts.OnLoad(rc.Record)
	}

	if in.cache == nil {
		return refused, nil
	}
	if len(res.changed) > 0 {
		in.putCache(ctx, res.changed, res.inserted)
	}
	if seenBefore || res.retried {
		in.refreshCache(ctx, unchangedIDs(sealed, res.changed, res.refused))
	}
	return refused, nil
}

// unchangedIDs returns the ids of batch that are neither in changed nor
// refused (whose index is into batch).
func unchangedIDs(batch, changed []viswals.SealedUser, refused []viswals.Refusal) []int64 {
	skip := make(map[int64]bool, len(changed)+len(refused))
	for _, u := range changed {
		skip[u.ID] = true
	}
	for _, r := range refused {
		skip[batch[r.Index].ID] = true
	}
	ids := make([]int64, 0, len(batch)-len(changed))
	for _, u := range batch {
		if !skip[u.ID] {
			skip[u.ID] = true
			ids = append(ids, u.ID)
		}
	}
	return ids
}

// refreshCache writes the stored versions of ids to the cache (see
// Ingest). Writing them, rather than deleting the entries, keeps the
// version guard working against a read that fetched an older row from
// Postgres and fills the cache after us. When the store cannot be read the
// entries are deleted instead. Like putCache it never fails ingestion.
func (in *Ingester) refreshCache(ctx context.Context, ids []int64) {
	if len(ids) == 0 {
		return
	}
	if !in.cacheBreaker.Allow() {
		in.stale.addIDs(ids)
		in.drainStaleLater()
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.opts.CacheTimeout)
	defer cancel()
	var err error
	if stored, gerr := in.store.GetMany(ctx, ids); gerr == nil {
		err = in.cache.Put(ctx, stored)
	} else if inv, ok := in.cache.(invalidator); ok {
		in.opts.Logger.Warn("cannot read back users to refresh their cache entries; deleting them", "users", len(ids), "err", gerr)
		err = inv.Delete(ctx, ids)
	} else {
		err = gerr
	}
	if err != nil {
		in.stale.addIDs(ids)
		in.drainStaleLater()
		in.cacheBreaker.Trip(in.opts.CacheCooldown)
		in.opts.Logger.Warn("cache refresh failed; continuing without cache", "users", len(ids), "err", err)
		in.opts.Metrics.CacheErrors.Inc()
		return
	}
	in.cacheBreaker.Reset()
}

// putCache writes to Redis after the commit (with PutNew when the users
// were inserted). A failure is logged and the breaker opens: reads fall
// back to Postgres and refill the cache.
func (in *Ingester) putCache(ctx context.Context, users []viswals.SealedUser, inserted bool) {
	if !in.cacheBreaker.Allow() {
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
		in.stale.addIDs(in.recent.take(time.Now()))
		in.drainStaleLater()
		in.cacheBreaker.Trip(in.opts.CacheCooldown)
		in.opts.Logger.Warn("cache write failed; continuing without cache", "users", len(users), "err", err)
		in.opts.Metrics.CacheErrors.Inc()
		return
	}
	in.recent.add(time.Now(), users)
	in.cacheBreaker.Reset()
}

// upsertResult is what upsert did with a batch.
type upsertResult struct {
	changed  []viswals.SealedUser // users whose content was written
	inserted bool                 // changed are all new ids
	refused  []viswals.Refusal    // by index into the batch
	// retried is set when a write failed without a clear answer and was
	// tried again: the failed attempt may have committed.
	retried bool
}

// upsert writes users, retrying while the store is unavailable. A
// batch the store refuses as invalid is retried one user at a time so that
// one bad user cannot keep the good ones out.
//
// rc (nil: none) is counted with the batch. When the batch is retried one
// user at a time, each user is counted under a message key of its own
// (the message's, "#" and its position) and the refusals under the
// message's with "#refused", so a redelivery, retried the same way, is
// not counted again either; rc then holds the sum.
func (in *Ingester) upsert(ctx context.Context, users []viswals.SealedUser, rc *viswals.Receipt) (upsertResult, error) {
	var res upsertResult
	if len(users) == 0 && rc == nil {
		return res, nil
	}
	var err error
	res.changed, res.inserted, err = in.upsertUntilAvailable(ctx, users, rc, &res.retried)
	if err == nil || viswals.ErrorCode(err) != viswals.EINVALID {
		return res, err
	}
	in.opts.Logger.Warn("batch refused by the store; retrying one by one", "users", len(users), "err", err)
	res.changed, res.inserted = nil, false
	var sum viswals.Receipt
	for i, u := range users {
		one := sub(rc, "#"+strconv.Itoa(i), 0)
		c, _, err := in.upsertUntilAvailable(ctx, []viswals.SealedUser{u}, one, &res.retried)
		switch {
		case err == nil:
			res.changed = append(res.changed, c...)
			addPart(&sum, one)
		case viswals.ErrorCode(err) == viswals.EINVALID:
			res.refused = append(res.refused, viswals.Refusal{Index: i, Reason: viswals.ErrorMessage(err)})
		default:
			return upsertResult{}, err
		}
	}
	if rc != nil {
		rest := sub(rc, "#refused", rc.Refused+int64(len(res.refused)))
		if _, _, err := in.upsertUntilAvailable(ctx, nil, rest, &res.retried); err != nil {
			return upsertResult{}, err
		}
		addPart(&sum, rest)
		rc.Tally, rc.Counted, rc.Record = sum.Tally, sum.Counted, sum.Record
	}
	return res, nil
}

// sub is a receipt for part of rc's message, named by suffix; nil for nil.
func sub(rc *viswals.Receipt, suffix string, refused int64) *viswals.Receipt {
	if rc == nil {
		return nil
	}
	return &viswals.Receipt{Load: rc.Load, Message: rc.Message + suffix, Refused: refused, Replayed: rc.Replayed}
}

func (in *Ingester) upsertUntilAvailable(ctx context.Context, users []viswals.SealedUser, rc *viswals.Receipt, retried *bool) ([]viswals.SealedUser, bool, error) {
	backoff := in.opts.RetryMin
	for {
		changed, inserted, err := in.store.UpsertCounted(ctx, users, rc)
		if err == nil || viswals.ErrorCode(err) == viswals.EINVALID {
			return changed, inserted, err
		}
		*retried = true
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

// RecordSummary records a load's summary (the producer's last message),
// retrying while the store is unavailable, until ctx is done. The
// producer's rejected rows are counted in the metrics the first time
// only.
func (in *Ingester) RecordSummary(ctx context.Context, sum viswals.LoadSummary) error {
	backoff := in.opts.RetryMin
	for {
		rec, fresh, err := in.store.RecordSummary(ctx, sum)
		if err == nil {
			if fresh {
				in.opts.Metrics.RowsRejected.Add(float64(sum.Rejected))
			}
			in.opts.OnLoad(rec)
			return nil
		}
		if viswals.ErrorCode(err) != viswals.EUNAVAILABLE {
			return err
		}
		in.opts.Metrics.StoreRetries.Inc()
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("record load summary: %w", err), ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, in.opts.RetryMax)
	}
}

// addPart adds the results of part (of a message) to sum: the tally of a
// part counted now (for the metrics), and the latest record.
func addPart(sum, part *viswals.Receipt) {
	if part == nil {
		return
	}
	if part.Counted {
		sum.Tally.Add(part.Tally)
		sum.Counted = true
	}
	sum.Record = part.Record
}
