// Package usercache is the read path of users: a Store that wraps the
// system of record (Postgres) with the read cache (Redis) in front of it,
// and opens the users' emails. Get asks the cache first, reads the store
// on a miss and fills the cache from it; List reads the store.
//
//	users := usercache.NewStore(store, cache, keyring, usercache.Options{...})
//
// cmd/consumer passes *postgres.Store, *rediscache.Cache and
// *emailcrypt.Keyring. A cache that also implements BatchCache (as
// *rediscache.Cache does) lets concurrent Gets share its round trips
// (batch.go). After the cache answers "unavailable", Gets skip it for
// Cooldown so that a hung Redis costs one timeout, not one per request.
package usercache

import (
	"context"
	"log/slog"
	"time"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/breaker"
)

// Source is the system of record behind the cache.
type Source interface {
	// Get returns one user, with an ENOTFOUND error when there is none.
	Get(ctx context.Context, id int64) (viswals.SealedUser, error)
	// List calls fn for up to limit users with id > afterID that match f,
	// in ascending id order, as they are read.
	List(ctx context.Context, f viswals.Filter, afterID int64, limit int, fn func(viswals.SealedUser) error) error
}

// Cache is the read cache in front of Source.
type Cache interface {
	// Get returns one user: ENOTFOUND on a miss, EUNAVAILABLE when the
	// cache is down, any other error for a value it cannot decode.
	Get(ctx context.Context, id int64) (viswals.SealedUser, error)
	Put(ctx context.Context, users []viswals.SealedUser) error
}

// Opener decrypts the email of a sealed user.
type Opener interface {
	Open(viswals.SealedUser) (viswals.User, error)
}

// Cooldown is how long Gets leave the cache alone after it answered
// "unavailable". Then the next Get (or batch of them) probes it again.
const Cooldown = time.Second

// Options configure a Store.
type Options struct {
	// Logger gets the warnings about cache values that do not decode or
	// open and cache fills that fail; nil discards.
	Logger *slog.Logger
	// Metrics counts cache lookups; nil counts into unregistered counters.
	Metrics *Metrics
}

// Store serves users from Source with Cache in front. It is safe for
// concurrent use.
type Store struct {
	src     Source
	cache   Cache    // nil: no cache
	batch   *batcher // non-nil when cache is a BatchCache
	keys    Opener
	log     *slog.Logger
	metrics *Metrics
	// Trips for Cooldown when the cache answers "unavailable".
	breaker breaker.Breaker
}

// NewStore returns a Store over src with cache in front of it; cache may be
// nil, and then every Get reads src.
func NewStore(src Source, cache Cache, keys Opener, opts Options) *Store {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	s := &Store{src: src, cache: cache, keys: keys, log: opts.Logger, metrics: opts.Metrics}
	if bc, ok := cache.(BatchCache); ok {
		s.batch = newBatcher(bc)
	}
	return s
}

// Get returns user id, email opened: from the cache when it holds the
// user, else from the source, and then the cache is filled. An ENOTFOUND
// error when there is no such user. When ctx ends while the cache is
// asked, Get returns ctx's error without reading the source: the caller
// is gone.
func (s *Store) Get(ctx context.Context, id int64) (viswals.User, error) {
	fill := false
	if s.cache != nil && s.breaker.Allow() {
		var su viswals.SealedUser
		var err error
		if s.batch != nil {
			su, err = s.batch.get(ctx, id)
		} else {
			su, err = s.cache.Get(ctx, id)
		}
		if ctx.Err() != nil {
			// The client went away (or timed out) while the cache was
			// asked: nothing to answer, nothing to fall back to.
			return viswals.User{}, ctx.Err()
		}
		if err == nil {
			u, err := s.keys.Open(su)
			if err == nil {
				s.metrics.hit.Inc()
				return u, nil
			}
			// A value that decodes but does not decrypt is as corrupt as
			// one that does not decode: the source has the truth.
			s.log.LogAttrs(ctx, slog.LevelWarn, "cached user does not open; reading postgres",
				slog.Int64("id", id), slog.String("err", err.Error()))
			fill = true
		} else {
			switch viswals.ErrorCode(err) {
			case viswals.ENOTFOUND:
				s.metrics.miss.Inc()
				fill = true
			case viswals.EUNAVAILABLE:
				// Redis is down: serve from the source, do not wait on a
				// cache write that would fail too, and leave the cache
				// alone for a while.
				s.metrics.err.Inc()
				s.breaker.Trip(Cooldown)
			default:
				s.metrics.err.Inc()
				s.log.LogAttrs(ctx, slog.LevelWarn, "cached user unreadable; reading postgres",
					slog.Int64("id", id), slog.String("err", err.Error()))
				fill = true
			}
		}
	}
	su, err := s.src.Get(ctx, id)
	if err != nil {
		return viswals.User{}, err
	}
	if fill {
		if err := s.cache.Put(ctx, []viswals.SealedUser{su}); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "cache fill failed",
				slog.Int64("id", id), slog.String("err", err.Error()))
		}
	}
	return s.keys.Open(su)
}

// List calls fn, email opened, for up to limit users with id > afterID
// that match f, in ascending id order, as the source reads them. Pages
// are not cached: the source serves them from an index.
func (s *Store) List(ctx context.Context, f viswals.Filter, afterID int64, limit int, fn func(viswals.User) error) error {
	return s.src.List(ctx, f, afterID, limit, func(su viswals.SealedUser) error {
		u, err := s.keys.Open(su)
		if err != nil {
			return err
		}
		return fn(u)
	})
}
