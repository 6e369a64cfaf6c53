package postgres

// Test-only access to internals, for the postgres_test package (which may
// import pgtest without an import cycle).

var ListQuery = listQuery

// Strategies names the upsert implementations the benchmarks compare.
var Strategies = map[string]strategy{
	"Unnest":    strategyUnnest,
	"CopyTemp":  strategyCopyTemp,
	"CopyFirst": strategyCopyFirst,
	"ProbeCopy": strategyProbeCopy,
}

func (s *Store) SetStrategy(st strategy) { s.strategy = st }

var SQLStateCode = sqlStateCode
