package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/postgres"
)

// Benchmarks of UpsertBatch in rows/s, for both strategies, against a bare
// COPY of the same rows into an indexed copy of the table. Each benchmark
// writes every batch with every writer in turn, so that load from other
// processes on the machine hits them alike and the ratios hold. For 1M
// rows:
//
//	go test ./postgres -run '^$' -bench Upsert -benchtime 1000x
//
// The ratios to BareCopy that chose copy-first with its id probe are in
// docs/benchmarks.md. COPY is never slower than the upsert on new ids, and
// faster when Postgres is short of CPU; a failed COPY costs several
// upserts, which the id probe and the pause (see UpsertBatch) avoid, at the
// price of one round trip per batch. For existing ids BareCopy is still
// inserting new rows: the yardstick of what the machine could do meanwhile.

const benchBatch = 1000

var benchFirst = []string{"James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Zoë", "Élodie", "Søren", "José"}
var benchLast = []string{"Smith", "Johnson", "Williams", "Brown", "Müller", "O'Brien", "Dvořák", "Nguyễn", "Lee", "Kim"}

// benchUsers returns batch b of users: ids b*benchBatch+1 onwards, sealed
// emails of a realistic size. A different rev is a content change.
func benchUsers(b, rev int) []viswals.SealedUser {
	users := make([]viswals.SealedUser, benchBatch)
	for i := range users {
		id := int64(b*benchBatch + i + 1)
		email := fmt.Sprintf("user%d.r%d@example.com", id, rev)
		hash := sha256.Sum256([]byte(email))
		sealed := "k1:" + base64.StdEncoding.EncodeToString(append(hash[:12], []byte(email+"0123456789abcdef")...))
		u := viswals.SealedUser{
			ID:          id,
			FirstName:   benchFirst[int(id)%len(benchFirst)],
			LastName:    benchLast[int(id/10)%len(benchLast)] + fmt.Sprint(rev),
			EmailSealed: sealed,
			EmailHash:   hash[:],
			CreatedAt:   epoch.Add(time.Duration(id) * time.Second),
			Version:     viswals.Version{Load: int64(rev), Line: id},
		}
		if id%10 == 0 {
			u.DeletedAt = ptr(u.CreatedAt.Add(time.Hour))
			u.ParentUserID = ptr(id - 1)
		}
		users[i] = u
	}
	return users
}

// writer writes one batch and accumulates the time it spent.
type writer struct {
	name  string
	url   string // the writer's database
	write func(ctx context.Context, batch []viswals.SealedUser) (changed int, err error)
	spent time.Duration
}

func upsertWriter(b *testing.B, name, strategy string) *writer {
	s, url := newStoreWith(b, postgres.PoolConfig{MaxConns: 4, Upsert: strategy})
	return &writer{name: name, url: url, write: func(ctx context.Context, batch []viswals.SealedUser) (int, error) {
		changed, _, err := s.UpsertBatch(ctx, batch)
		return len(changed), err
	}}
}

// bareCopyWriter copies batches straight into an empty table with the same
// columns and indexes as users, one transaction per batch: no version
// check, no changefeed, no notification. The yardstick.
func bareCopyWriter(b *testing.B) *writer {
	_, url := newStore(b)
	conn := connect(b, url)
	_, err := conn.Exec(context.Background(), "CREATE TABLE users_bare (LIKE users INCLUDING ALL)")
	require.NoError(b, err)
	cols := []string{"id", "first_name", "last_name", "first_name_lc", "last_name_lc",
		"email_address", "email_hash", "created_at", "deleted_at", "merged_at",
		"parent_user_id", "version_load", "version_line"}
	return &writer{name: "BareCopy", write: func(ctx context.Context, batch []viswals.SealedUser) (int, error) {
		n, err := conn.CopyFrom(ctx, pgx.Identifier{"users_bare"}, cols, pgx.CopyFromSlice(len(batch), func(j int) ([]any, error) {
			u := &batch[j]
			return []any{u.ID, u.FirstName, u.LastName, viswals.Fold(u.FirstName), viswals.Fold(u.LastName),
				u.EmailSealed, u.EmailHash, u.CreatedAt, u.DeletedAt, u.MergedAt, u.ParentUserID,
				u.Version.Load, u.Version.Line}, nil
		}))
		return int(n), err
	}}
}

func allWriters(b *testing.B) []*writer {
	return []*writer{
		upsertWriter(b, "CopyFirst", postgres.UpsertCopyFirst),
		upsertWriter(b, "Unnest", postgres.UpsertUnnest),
		bareCopyWriter(b),
	}
}

// runInterleaved writes batch i with every writer in turn (rotating who
// goes first) and reports each writer's rows/s.
func runInterleaved(b *testing.B, batches [][]viswals.SealedUser, wantChanged int, writers ...*writer) {
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range writers {
			w := writers[(i+k)%len(writers)]
			start := time.Now()
			n, err := w.write(ctx, batches[i])
			w.spent += time.Since(start)
			if err != nil {
				b.Fatalf("%s: %v", w.name, err)
			}
			if w.name != "BareCopy" && n != wantChanged {
				b.Fatalf("%s: changed %d rows, want %d", w.name, n, wantChanged)
			}
		}
	}
	b.StopTimer()
	bare := 0.0
	for _, w := range writers {
		rate := float64(b.N*benchBatch) / w.spent.Seconds()
		b.ReportMetric(rate, w.name+"_rows/s")
		if w.name == "BareCopy" {
			bare = rate
		}
	}
	for _, w := range writers {
		if w.name != "BareCopy" {
			b.ReportMetric(float64(b.N*benchBatch)/w.spent.Seconds()/bare, w.name+"/bare")
		}
	}
}

// BenchmarkUpsert_Fresh: batches of new ids, the first load of a file.
func BenchmarkUpsert_Fresh(b *testing.B) {
	ws := allWriters(b)
	batches := make([][]viswals.SealedUser, b.N)
	for i := range batches {
		batches[i] = benchUsers(i, 1)
	}
	runInterleaved(b, batches, benchBatch, ws...)
}

// BenchmarkUpsert_Update: newer versions with new content over existing
// ids, a later export that changed every row.
func BenchmarkUpsert_Update(b *testing.B) { benchExisting(b, 2, benchBatch) }

// BenchmarkUpsert_Reload: newer versions of the same content, the same
// file loaded again: nothing changes but the stored versions.
func BenchmarkUpsert_Reload(b *testing.B) { benchExisting(b, 1, 0) }

func benchExisting(b *testing.B, rev, wantChanged int) {
	ws := allWriters(b)
	ctx := context.Background()
	// Every upsert's table is loaded the same way, through the upsert:
	// COPY would leave the table out of shared buffers (it writes through
	// a small ring), which would slow that writer's updates for a reason
	// that has nothing to do with its way of writing.
	var loaders []*postgres.Store
	for _, w := range ws[:len(ws)-1] { // the upserts; BareCopy starts empty
		s, err := postgres.Open(ctx, w.url, postgres.PoolConfig{Upsert: postgres.UpsertUnnest})
		require.NoError(b, err)
		defer s.Close()
		loaders = append(loaders, s)
	}
	batches := make([][]viswals.SealedUser, b.N)
	for i := range batches {
		first := benchUsers(i, 1)
		for _, s := range loaders {
			_, _, err := s.UpsertBatch(ctx, first)
			require.NoError(b, err)
		}
		batches[i] = benchUsers(i, rev)
		for j := range batches[i] {
			batches[i][j].Version.Load = 2 // newer than what is stored
		}
	}
	runInterleaved(b, batches, wantChanged, ws...)
}
