package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viswals/viswals"
)

// UpsertCounted is UpsertBatch that also counts users into their load
// (rc, nil: no load) in the same transaction, so the counts are exact
// however often a message is delivered: rc.Message is recorded with them,
// and a message recorded before is not counted again (rc.Counted is then
// false). Users that are not inserted or updated count as unchanged,
// those of a batch that superseded each other included. With no users it
// only records rc.Refused. rc.Record is the load's record after the
// commit, other messages' counts included.
func (s *Store) UpsertCounted(ctx context.Context, users []viswals.SealedUser, rc *viswals.Receipt) (changed []viswals.SealedUser, inserted bool, err error) {
	if len(users) > 0 {
		return s.upsertBatch(ctx, users, rc)
	}
	if rc == nil {
		return nil, false, nil
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return countReceipt(ctx, tx, rc, viswals.Tally{})
	})
	return nil, false, classify("count load", err)
}

// loadColumns are the columns of a LoadRecord, as scanLoad reads them.
const loadColumns = `id, received, inserted, updated, unchanged, dead_lettered,
	first_commit_at, last_commit_at, read_rows, published_rows, rejected_rows`

// countSQL adds a message's counts to its load, once per message key. $8
// is how many of its rows come back from the dead-letter queue (a replayed
// dead letter): counted as received and dead-lettered before, they leave
// both (no more than the load holds as dead-lettered, so the counts never
// go below zero), and count again under their new outcome.
const countSQL = `WITH m AS (
	INSERT INTO load_messages (load_id, message) VALUES ($1, $2)
	ON CONFLICT DO NOTHING RETURNING load_id
)
INSERT INTO loads AS l (id, received, inserted, updated, unchanged, dead_lettered, first_commit_at, last_commit_at)
SELECT $1, $3, $4, $5, $6, $7, clock_timestamp(), clock_timestamp() FROM m
ON CONFLICT (id) DO UPDATE SET
	received = l.received + EXCLUDED.received - LEAST($8::bigint, l.dead_lettered),
	inserted = l.inserted + EXCLUDED.inserted,
	updated = l.updated + EXCLUDED.updated,
	unchanged = l.unchanged + EXCLUDED.unchanged,
	dead_lettered = l.dead_lettered + EXCLUDED.dead_lettered - LEAST($8::bigint, l.dead_lettered),
	first_commit_at = LEAST(l.first_commit_at, EXCLUDED.first_commit_at),
	last_commit_at = GREATEST(l.last_commit_at, EXCLUDED.last_commit_at)
RETURNING ` + loadColumns

// countReceipt adds a message's tally (t, plus rc.Refused as dead-lettered)
// to its load, unless the message was counted before; the rows of a
// replayed dead letter move out of dead-lettered instead (see countSQL). A
// replayed dead letter whose load has no record (pruned, or never counted)
// counts as new rows. It runs last in the transaction that wrote the
// users: the load's row is the last lock taken, so concurrent batches
// cannot deadlock on it.
func countReceipt(ctx context.Context, tx pgx.Tx, rc *viswals.Receipt, t viswals.Tally) error {
	if rc == nil {
		return nil
	}
	t.DeadLettered += rc.Refused
	t.Received = t.Inserted + t.Updated + t.Unchanged + t.DeadLettered
	var back int64
	if rc.Replayed {
		back = t.Received
	}
	rec, err := scanLoad(tx.QueryRow(ctx, countSQL, rc.Load, rc.Message,
		t.Received, t.Inserted, t.Updated, t.Unchanged, t.DeadLettered, back))
	switch {
	case err == nil:
		if rc.Replayed {
			// Already counted as received and dead-lettered: what is
			// new is the outcome of those committed now.
			t.Received, t.DeadLettered = 0, 0
		}
		rc.Tally, rc.Counted, rc.Record = t, true, rec
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		rc.Counted = false
		rc.Record, err = scanLoad(tx.QueryRow(ctx, "SELECT "+loadColumns+" FROM loads WHERE id = $1", rc.Load))
		return err
	}
	return err
}

// RecordSummary records a load's summary, the producer's last message. It
// reports whether it was new (false for a summary recorded before, which
// changes nothing), with the load's record.
func (s *Store) RecordSummary(ctx context.Context, sum viswals.LoadSummary) (viswals.LoadRecord, bool, error) {
	var rec viswals.LoadRecord
	var fresh bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		rec, err = scanLoad(tx.QueryRow(ctx, `INSERT INTO loads AS l (id, read_rows, published_rows, rejected_rows, summary_at)
VALUES ($1, $2, $3, $4, clock_timestamp())
ON CONFLICT (id) DO UPDATE SET read_rows = EXCLUDED.read_rows, published_rows = EXCLUDED.published_rows,
	rejected_rows = EXCLUDED.rejected_rows, summary_at = EXCLUDED.summary_at
WHERE l.summary_at IS NULL
RETURNING `+loadColumns, sum.Load, sum.Read, sum.Published, sum.Rejected))
		if err == nil {
			fresh = true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		rec, err = scanLoad(tx.QueryRow(ctx, "SELECT "+loadColumns+" FROM loads WHERE id = $1", sum.Load))
		return err
	})
	return rec, fresh, classify("record load summary", err)
}

// GetLoad returns the record of load id; ENOTFOUND when no message of it
// arrived.
func (s *Store) GetLoad(ctx context.Context, id int64) (viswals.LoadRecord, error) {
	rec, err := scanLoad(s.pool.QueryRow(ctx, "SELECT "+loadColumns+" FROM loads WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return rec, viswals.Errorf(viswals.ENOTFOUND, "load %d not found", id)
	}
	return rec, classify("get load", err)
}

// ListLoads returns up to limit loads older than before (0: the newest),
// newest first: a load's id is its start time.
func (s *Store) ListLoads(ctx context.Context, before int64, limit int) ([]viswals.LoadRecord, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, "SELECT "+loadColumns+" FROM loads WHERE id < $1 ORDER BY id DESC LIMIT $2", before, limit)
	if err != nil {
		return nil, classify("list loads", err)
	}
	var out []viswals.LoadRecord
	for rows.Next() {
		rec, err := scanLoad(rows)
		if err != nil {
			rows.Close()
			return nil, classify("list loads", err)
		}
		out = append(out, rec)
	}
	return out, classify("list loads", rows.Err())
}

func scanLoad(row pgx.Row) (viswals.LoadRecord, error) {
	var r viswals.LoadRecord
	var first, last *time.Time
	var read, published, rejected *int64
	err := row.Scan(&r.ID, &r.Received, &r.Inserted, &r.Updated, &r.Unchanged, &r.DeadLettered,
		&first, &last, &read, &published, &rejected)
	if err != nil {
		return r, err
	}
	if first != nil {
		r.FirstCommit, r.LastCommit = first.UTC(), last.UTC()
	}
	if published != nil {
		r.Summary = &viswals.LoadSummary{Load: r.ID, Read: *read, Published: *published, Rejected: *rejected}
	}
	return r, nil
}

// PruneLoadMessages deletes the message keys (load_messages) of the loads
// that are accounted for (their summary arrived and every published row
// was received: complete or dead_lettered) and were last written before
// before, and returns how many it deleted. The keys exist to stop a
// redelivered message from being counted twice, and grow with every
// message; a redelivery long after its load ended is not expected (should
// one come, it counts again). The loads' records stay. A load still
// incomplete keeps its keys.
func (s *Store) PruneLoadMessages(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM load_messages m USING loads l
WHERE m.load_id = l.id AND l.published_rows IS NOT NULL AND l.received >= l.published_rows
	AND GREATEST(l.last_commit_at, l.summary_at) < $1`, before)
	if err != nil {
		return 0, classify("prune load messages", err)
	}
	return tag.RowsAffected(), nil
}

// KeepLoadMessagesPruned calls PruneLoadMessages with the keys older than
// retention at once, then every interval, until ctx ends. Failures are
// reported to onErr (nil: ignored) and retried next time; onPruned (nil:
// none) is told how many keys each round deleted.
func (s *Store) KeepLoadMessagesPruned(ctx context.Context, retention, interval time.Duration, onPruned func(int64), onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.PruneLoadMessages(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil && onErr != nil:
			onErr(err)
		case err == nil && onPruned != nil:
			onPruned(n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
