package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	ctx := context.Background()
	admin, _ := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/postgres")
	admin.Exec(ctx, "DROP DATABASE IF EXISTS scratch_b WITH (FORCE)")
	admin.Exec(ctx, "CREATE DATABASE scratch_b")
	conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/scratch_b")
	if err != nil {
		panic(err)
	}
	mig, _ := os.ReadFile("/work/main/postgres/migrations/000001_create_users.up.sql")
	n := 300000
	rows := make([][]any, n)
	now := time.Now()
	for i := range rows {
		id := int64(i + 1)
		rows[i] = []any{id, "Zoltán", "O'Brien", "zoltán", "o'brien", "k1:" + strings.Repeat("x", 60), []byte(strings.Repeat("h", 32)), now, nil, nil, nil, int64(1), id}
	}
	cols := []string{"id", "first_name", "last_name", "first_name_lc", "last_name_lc", "email_address", "email_hash", "created_at", "deleted_at", "merged_at", "parent_user_id", "version_load", "version_line"}
	for _, c := range []struct {
		name  string
		ddl   string
		batch int
	}{
		{"pk only, one tx", "pk", n},
		{"full schema, one tx", "full", n},
		{"pk only, 1000/tx", "pk", 1000},
		{"full schema, 1000/tx", "full", 1000},
		{"full schema, 5000/tx", "full", 5000},
	} {
		conn.Exec(ctx, "DROP TABLE IF EXISTS users")
		if c.ddl == "full" {
			if _, err := conn.Exec(ctx, string(mig)); err != nil {
				panic(err)
			}
		} else {
			conn.Exec(ctx, `CREATE TABLE users (id bigint PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL, first_name_lc text COLLATE "C" NOT NULL, last_name_lc text COLLATE "C" NOT NULL, email_address text NOT NULL, email_hash bytea NOT NULL, created_at timestamptz NOT NULL, deleted_at timestamptz, merged_at timestamptz, parent_user_id bigint, version_load bigint NOT NULL, version_line bigint NOT NULL, changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id())`)
		}
		start := time.Now()
		for i := 0; i < n; i += c.batch {
			if _, err := conn.CopyFrom(ctx, pgx.Identifier{"users"}, cols, pgx.CopyFromRows(rows[i:min(n, i+c.batch)])); err != nil {
				panic(err)
			}
		}
		fmt.Printf("%-25s %6.2fs %8.0f rows/s\n", c.name, time.Since(start).Seconds(), float64(n)/time.Since(start).Seconds())
	}
	conn.Close(ctx)
	admin.Exec(ctx, "DROP DATABASE IF EXISTS scratch_b WITH (FORCE)")
}
