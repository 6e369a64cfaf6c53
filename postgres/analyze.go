package postgres

import (
	"context"
	"time"
)

// AnalyzeIfStale refreshes the planner's statistics of users (ANALYZE)
// when at least minRows rows, and at least a tenth of the table, changed
// since they were last gathered, and reports whether it did.
//
// The list queries choose between the name indexes and the primary key by
// how common a prefix is, which the planner knows only from statistics.
// Right after a bulk load autovacuum may not have analyzed the table yet
// (it wakes once a minute and may be busy elsewhere): a 1M-row table
// without statistics plans a one-letter prefix as a sort of every match,
// 100× slower than the primary-key scan it picks once analyzed.
func (s *Store) AnalyzeIfStale(ctx context.Context, minRows int64) (bool, error) {
	var changed int64
	var tuples float64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(n_mod_since_analyze, 0), greatest(c.reltuples, 0)
		FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
		WHERE c.oid = 'users'::regclass`).Scan(&changed, &tuples)
	if err != nil {
		return false, classify("analyze users", err)
	}
	if changed < minRows || float64(changed) < tuples/10 {
		return false, nil
	}
	if _, err := s.pool.Exec(ctx, "ANALYZE users"); err != nil {
		return false, classify("analyze users", err)
	}
	return true, nil
}

// KeepAnalyzed calls AnalyzeIfStale every interval until ctx ends.
// Failures are reported to onErr (nil: ignored) and retried next time.
func (s *Store) KeepAnalyzed(ctx context.Context, interval time.Duration, minRows int64, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.AnalyzeIfStale(ctx, minRows); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
	}
}
