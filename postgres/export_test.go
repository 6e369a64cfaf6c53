package postgres

import "context"

// Test-only access to internals, for the postgres_test package (which may
// import pgtest without an import cycle).

var ListQuery = listQuery

var SQLStateCode = sqlStateCode

// CopyPause is the number of batches that will skip COPY.
func (s *Store) CopyPause() int64 { return s.copyPause.Load() }

// ShowSetting reads a run-time parameter on one of the pool's connections.
func (s *Store) ShowSetting(ctx context.Context, name string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v)
	return v, err
}

var (
	ParseSnapshot = parseSnapshot
	SnapshotText  = snapshotText
)
