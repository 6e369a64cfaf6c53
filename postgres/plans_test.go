package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/postgres"
)

// TestListPlans checks on 200k rows that filtered pages are served by the
// indexes, never by a scan of the table: a rare prefix from its name index,
// a common one from the primary key in id order. PLANS.md has the same
// plans, with timings, on 10M rows.
func TestListPlans(t *testing.T) {
	t.Parallel()
	_, url := newStore(t)
	conn := connect(t, url)
	ctx := context.Background()
	// In transactions of a few thousand rows: one transaction writing them
	// all would hold the changefeed horizon of the whole server (see
	// pgtest.HorizonWait) for as long as it runs, delaying every test that
	// reads the changefeed meanwhile.
	const rows, chunk = 200000, 10000
	for from := 1; from <= rows; from += chunk {
		_, err := conn.Exec(ctx, `
INSERT INTO users (id, first_name, last_name, first_name_lc, last_name_lc, email_address, email_hash,
	created_at, version_load, version_line)
SELECT g, f, l, lower(f), lower(l), 'k1:sealed', '\x00', now(), 1, g
FROM generate_series($1::int, $2::int) g,
LATERAL (SELECT
	CASE WHEN g % 1000 = 0 THEN 'Zyx' || g ELSE (ARRAY['James','Mary','John','Linda','Zoe'])[1 + g % 5] END AS f,
	CASE WHEN g % 997 = 0 THEN 'Qwv' || g ELSE (ARRAY['Smith','Jones','Brown','Lee'])[1 + g % 4] END AS l) n`, from, from+chunk-1)
		require.NoError(t, err)
	}
	_, err := conn.Exec(ctx, "VACUUM ANALYZE users")
	require.NoError(t, err)
	// As the Store's connections are configured.
	_, err = conn.Exec(ctx, "SET plan_cache_mode = force_custom_plan")
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		f       viswals.Filter
		afterID int64
		index   string
	}{
		{"rare first name", viswals.Filter{FirstName: "ZYX"}, 0, "users_first_name"},
		{"rare first name, later page", viswals.Filter{FirstName: "zyx1"}, 150000, "users_first_name"},
		{"rare last name", viswals.Filter{LastName: "qwv"}, 0, "users_last_name"},
		{"both, rare last", viswals.Filter{FirstName: "j", LastName: "qwv"}, 0, "users_last_name"},
		{"common first name", viswals.Filter{FirstName: "ja"}, 0, "users_pkey"},
		{"no filter", viswals.Filter{}, 100000, "users_pkey"},
	} {
		sql, args := postgres.ListQuery(tc.f, tc.afterID, 100, nil)
		plan := explain(t, conn, sql, args)
		t.Logf("%s:\n%s", tc.name, plan)
		require.Contains(t, plan, tc.index, "%s:\n%s", tc.name, plan)
		require.NotContains(t, plan, "Seq Scan", "%s:\n%s", tc.name, plan)
	}
	// The rare prefix is answered from the index alone, the table read only
	// for the page's rows.
	sql, args := postgres.ListQuery(viswals.Filter{FirstName: "zyx"}, 0, 100, nil)
	require.Contains(t, explain(t, conn, sql, args), "Index Only Scan using users_first_name")
}

func explain(t *testing.T, conn *pgx.Conn, sql string, args []any) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "EXPLAIN "+sql, args...)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(lines, "\n")
}
