// Package rekey re-seals stored emails under the primary key of a
// keyring, online: in batches walked by id, each written only where the
// row still holds what was read, so ingestion and the API keep running.
// It only touches rows that are not current (another key, or an old seal
// without the user id), so a run that was stopped at any point is resumed
// by running it again.
package rekey

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/postgres"
)

// Store is the system of record (*postgres.Store).
type Store interface {
	SealedEmails(ctx context.Context, afterID int64, limit int) ([]postgres.SealedEmail, error)
	Reseal(ctx context.Context, batch []postgres.Reseal) ([]int64, error)
}

// Cache is the read cache (*rediscache.Cache): entries of rewritten rows
// are dropped, so that the next read fills them from the store.
type Cache interface {
	Delete(ctx context.Context, ids []int64) error
}

// Options configure a run.
type Options struct {
	BatchSize int  // rows per batch (and per transaction); 0: 1000
	DryRun    bool // only count: write nothing
	// Progress, when set, is called after each batch with the totals so far.
	Progress func(Summary)
	Logger   *slog.Logger // rows that do not open, cache failures; nil discards
}

// Summary counts the rows of a run.
type Summary struct {
	Scanned  int64 // rows read
	Resealed int64 // rows rewritten under the primary key (DryRun: would be)
	Current  int64 // rows already under the primary key, user id bound
	Changed  int64 // rows written by someone else between read and rewrite: current already
	Failed   int64 // rows whose email does not open with the ring (logged by id)
	LastID   int64 // the last id read
	// BySealing counts the rows read per sealing before the run: key id,
	// "(unbound)" for seals without the user id, "malformed" for others.
	BySealing map[string]int64
	CacheErrs int64 // cache deletes that failed (those entries fall back to the store when they do not open)
}

// Skipped is the rows left as they were: current, or changed meanwhile.
func (s Summary) Skipped() int64 { return s.Current + s.Changed }

// String is the summary line.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scanned=%d resealed=%d skipped=%d failed=%d", s.Scanned, s.Resealed, s.Skipped(), s.Failed)
	if s.CacheErrs > 0 {
		fmt.Fprintf(&b, " cache_errors=%d", s.CacheErrs)
	}
	b.WriteString(" keys:")
	for _, k := range slices.Sorted(maps.Keys(s.BySealing)) {
		fmt.Fprintf(&b, " %q=%d", k, s.BySealing[k])
	}
	return b.String()
}

// Run re-seals every row of store that ring.Current says is not current,
// from the first id to the last. It returns when done, when ctx ends, or
// on a store error; the summary counts what was done until then.
func Run(ctx context.Context, store Store, cache Cache, ring *emailcrypt.Keyring, opts Options) (Summary, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	sum := Summary{BySealing: map[string]int64{}}
	var batch []postgres.Reseal
	for {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		rows, err := store.SealedEmails(ctx, sum.LastID, opts.BatchSize)
		if err != nil {
			return sum, err
		}
		if len(rows) == 0 {
			return sum, nil
		}
		batch = batch[:0]
		for _, r := range rows {
			sum.Scanned++
			sum.LastID = r.ID
			sealing, ok := emailcrypt.SealingOf(r.Sealed)
			if !ok {
				sum.BySealing["malformed"]++
			} else {
				sum.BySealing[sealing.String()]++
			}
			if ring.Current(r.Sealed) {
				sum.Current++
				continue
			}
			email, err := ring.Decrypt(r.ID, r.Sealed)
			if err != nil {
				sum.Failed++
				opts.Logger.LogAttrs(ctx, slog.LevelError, "email does not open; left as it is",
					slog.Int64("id", r.ID), slog.String("err", err.Error()))
				continue
			}
			sealed, err := ring.Encrypt(r.ID, email)
			if err != nil {
				return sum, fmt.Errorf("seal user %d: %w", r.ID, err)
			}
			batch = append(batch, postgres.Reseal{ID: r.ID, Old: r.Sealed, New: sealed, Hash: ring.Hash(email)})
		}
		if opts.DryRun {
			sum.Resealed += int64(len(batch))
		} else if len(batch) > 0 {
			done, err := store.Reseal(ctx, batch)
			if err != nil {
				return sum, err
			}
			sum.Resealed += int64(len(done))
			sum.Changed += int64(len(batch) - len(done))
			if err := cache.Delete(ctx, done); err != nil {
				sum.CacheErrs += int64(len(done))
				opts.Logger.LogAttrs(ctx, slog.LevelWarn, "dropping rewritten users from the cache failed",
					slog.Int64("first_id", done[0]), slog.Int("users", len(done)), slog.String("err", err.Error()))
			}
		}
		if opts.Progress != nil {
			opts.Progress(sum)
		}
	}
}
