package postgres

import (
	"context"
	"time"
)

// AnalyzeIfStale refreshes the planner's statistics of users (ANALYZE)
// when needsAnalyze says so, and reports whether it did. settled tells
// that writes have paused (KeepAnalyzed: the change count stood still for
// an interval).
//
// The list queries choose between the name indexes and the primary key by
// how common a prefix is, which the planner knows only from statistics.
// Right after a bulk load autovacuum may not have analyzed the table yet
// (it wakes once a minute and may be busy elsewhere): a large table
// without statistics plans a one-letter prefix as a sort of every match,
// far slower than the primary-key scan it picks once analyzed.
func (s *Store) AnalyzeIfStale(ctx context.Context, minRows int64, settled bool) (bool, error) {
	changed, tuples, err := s.modsSinceAnalyze(ctx)
	if err != nil {
		return false, err
	}
	return s.analyzeIf(ctx, needsAnalyze(changed, tuples, minRows, settled))
}

func (s *Store) analyzeIf(ctx context.Context, needed bool) (bool, error) {
	if !needed {
		return false, nil
	}
	if _, err := s.pool.Exec(ctx, "ANALYZE users"); err != nil {
		return false, classify("analyze users", err)
	}
	return true, nil
}

// needsAnalyze decides from the rows changed since the last ANALYZE and
// the table's size then (negative: never analyzed). ANALYZE of a large
// table costs Postgres as much CPU as loading a good many rows, so during
// a load it runs only when it matters: once the table has no
// statistics at all, or has grown more than tenfold since; otherwise once
// the writes pause, if a tenth of the table changed. (Plain growth needs
// no new statistics: the planner scales row counts by the table's pages.)
func needsAnalyze(changed int64, tuples float64, minRows int64, settled bool) bool {
	switch {
	case changed < minRows:
		return false
	case tuples < 0:
		return true
	case float64(changed) >= 10*tuples:
		return true
	default:
		return settled && float64(changed) >= tuples/10
	}
}

func (s *Store) modsSinceAnalyze(ctx context.Context) (changed int64, tuples float64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT coalesce(n_mod_since_analyze, 0), c.reltuples
		FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
		WHERE c.oid = 'users'::regclass`).Scan(&changed, &tuples)
	if err != nil {
		return 0, 0, classify("analyze users", err)
	}
	return changed, tuples, nil
}

// KeepAnalyzed calls AnalyzeIfStale every interval until ctx ends; writes
// count as settled when the change count did not move in an interval.
// Failures are reported to onErr (nil: ignored) and retried next time.
func (s *Store) KeepAnalyzed(ctx context.Context, interval time.Duration, minRows int64, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := int64(-1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, tuples, err := s.modsSinceAnalyze(ctx)
		if err == nil {
			_, err = s.analyzeIf(ctx, needsAnalyze(changed, tuples, minRows, changed == last))
			last = changed
		}
		if err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
	}
}
