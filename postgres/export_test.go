package postgres

// Test-only access to internals, for the postgres_test package (which may
// import pgtest without an import cycle).

var ListQuery = listQuery

var SQLStateCode = sqlStateCode

// CopyPause is the number of batches that will skip COPY.
func (s *Store) CopyPause() int64 { return s.copyPause.Load() }
