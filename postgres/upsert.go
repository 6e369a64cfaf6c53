package postgres

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/viswals/viswals"
)

// NotifyChannel is the channel UpsertBatch notifies, in the transaction that
// changed rows, so listeners wake when the change is committed.
const NotifyChannel = "users_changed"

// UpsertBatch writes users in one transaction and returns the ones whose
// content it inserted or changed, in id order. inserted reports that they
// were all new ids, written by COPY: no earlier version of them existed,
// so no cache can hold an older one (the cache writes them without a
// version check).
//
// It is idempotent and independent of delivery order: a user is written
// only when its Version is greater than the stored one, and of several
// users with one id in the batch only the greatest version counts. When a
// newer version carries the same content (names, email hash, times,
// parent), only the stored version moves: the ciphertext and the
// changefeed position are kept, so reloading a file changes no content and
// streams nothing. A transaction that changed something notifies
// NotifyChannel before it commits.
//
// How: a batch that looks new (neither its lowest nor its highest id is
// stored) is written with COPY, as fast as Postgres loads rows; if an id
// in between exists the COPY fails as a whole (unique violation) and the
// batch goes through INSERT ... ON CONFLICT instead, as does any batch
// that does not look new. Either path gives the same result; only speed
// differs (see bench_test.go).
func (s *Store) UpsertBatch(ctx context.Context, users []viswals.SealedUser) (changed []viswals.SealedUser, inserted bool, err error) {
	if len(users) == 0 {
		return nil, false, nil
	}
	return s.upsertBatch(ctx, users, nil)
}

// upsertBatch is UpsertBatch, counting into rc's load (see UpsertCounted).
func (s *Store) upsertBatch(ctx context.Context, users []viswals.SealedUser, rc *viswals.Receipt) (changed []viswals.SealedUser, inserted bool, err error) {
	batch := latestByID(users)
	superseded := int64(len(users) - len(batch))
	if s.tryCopy() {
		copied, err := s.copyIfNew(ctx, batch, rc, superseded)
		if err != nil {
			return nil, false, classify("upsert batch", err)
		}
		if copied {
			return batch, true, nil
		}
	}
	changed, err = s.upsert(ctx, batch, rc, superseded)
	if err != nil {
		return nil, false, classify("upsert batch", err)
	}
	return changed, false, nil
}

// copyIfNew writes batch with COPY if its ids are new, and reports whether
// it did.
func (s *Store) copyIfNew(ctx context.Context, batch []viswals.SealedUser, rc *viswals.Receipt, superseded int64) (bool, error) {
	// Two index probes: a reload or a later export of the same users is
	// caught here, without the cost of a failed COPY.
	var exists bool
	err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM users WHERE id IN ($1, $2))",
		batch[0].ID, batch[len(batch)-1].ID).Scan(&exists)
	if err != nil || exists {
		return false, err
	}
	err = s.copyNew(ctx, batch, rc, superseded)
	switch {
	case err == nil:
		s.copyPauseLen.Store(0)
		return true, nil
	case isUniqueViolation(err):
		s.pauseCopy()
		return false, nil
	default:
		return false, err
	}
}

// When a COPY met an existing id between a new lowest and highest id, the
// batches that follow probably mix stored and new ids too (a file with
// duplicate ids), and a failed COPY costs two to three upserts. So COPY
// pauses for a number of batches that doubles while it keeps failing, from
// minCopyPause to maxCopyPause, and resets when it succeeds.
const (
	minCopyPause = 16
	maxCopyPause = 128
)

// tryCopy reports whether this batch should try COPY, counting down a pause.
func (s *Store) tryCopy() bool {
	if s.upsertOnly {
		return false
	}
	for {
		n := s.copyPause.Load()
		if n <= 0 {
			return true
		}
		if s.copyPause.CompareAndSwap(n, n-1) {
			return false
		}
	}
}

func (s *Store) pauseCopy() {
	n := min(max(2*s.copyPauseLen.Load(), minCopyPause), maxCopyPause)
	s.copyPauseLen.Store(n)
	s.copyPause.Store(n)
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// latestByID returns a copy of users with one user per id, the one with the
// greatest version, sorted by id. An INSERT ... ON CONFLICT cannot touch a
// row twice, and taking row locks in id order keeps concurrent batches
// that share ids from deadlocking.
func latestByID(users []viswals.SealedUser) []viswals.SealedUser {
	batch := slices.Clone(users)
	slices.SortFunc(batch, func(a, b viswals.SealedUser) int {
		if c := cmp.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		// Greatest version first, so Compact keeps it.
		if c := cmp.Compare(b.Version.Load, a.Version.Load); c != 0 {
			return c
		}
		return cmp.Compare(b.Version.Line, a.Version.Line)
	})
	return slices.CompactFunc(batch, func(a, b viswals.SealedUser) bool { return a.ID == b.ID })
}

// insertColumns are the columns a write sets; changed_xid takes its default,
// the writing transaction's id.
var insertColumns = []string{
	"id", "first_name", "last_name", "first_name_lc", "last_name_lc",
	"email_address", "email_hash", "created_at", "deleted_at", "merged_at",
	"parent_user_id", "version_load", "version_line",
}

// onConflict applies a newer version of an existing row (rules in
// UpsertBatch): everything is set, but when sameContent holds the stored
// ciphertext and changefeed position are kept; otherwise the row's folded
// names and position move to the before_ columns (the changefeed's leave
// events read them). RETURNING tells which rows got new content: those
// stamped with this transaction's id; of those, a row without xmax was
// inserted (an updated row is locked by this transaction).
const onConflict = `
ON CONFLICT (id) DO UPDATE SET
	first_name = EXCLUDED.first_name,
	last_name = EXCLUDED.last_name,
	first_name_lc = EXCLUDED.first_name_lc,
	last_name_lc = EXCLUDED.last_name_lc,
	email_hash = EXCLUDED.email_hash,
	created_at = EXCLUDED.created_at,
	deleted_at = EXCLUDED.deleted_at,
	merged_at = EXCLUDED.merged_at,
	parent_user_id = EXCLUDED.parent_user_id,
	version_load = EXCLUDED.version_load,
	version_line = EXCLUDED.version_line,
	email_address = CASE WHEN ` + sameContent + ` THEN u.email_address ELSE EXCLUDED.email_address END,
	changed_xid = CASE WHEN ` + sameContent + ` THEN u.changed_xid ELSE EXCLUDED.changed_xid END,
	before_first_name_lc = CASE WHEN ` + sameContent + ` THEN u.before_first_name_lc ELSE u.first_name_lc END,
	before_last_name_lc = CASE WHEN ` + sameContent + ` THEN u.before_last_name_lc ELSE u.last_name_lc END,
	before_changed_xid = CASE WHEN ` + sameContent + ` THEN u.before_changed_xid ELSE u.changed_xid END
WHERE (u.version_load, u.version_line) < (EXCLUDED.version_load, EXCLUDED.version_line)
RETURNING id, changed_xid = pg_current_xact_id(), u.xmax = 0`

// sameContent compares the stored content with the new one, NULLs included.
const sameContent = `(u.first_name, u.last_name, u.email_hash, u.created_at, u.deleted_at, u.merged_at, u.parent_user_id)
	IS NOT DISTINCT FROM (EXCLUDED.first_name, EXCLUDED.last_name, EXCLUDED.email_hash, EXCLUDED.created_at, EXCLUDED.deleted_at, EXCLUDED.merged_at, EXCLUDED.parent_user_id)`

const upsertSQL = `INSERT INTO users AS u (id, first_name, last_name, first_name_lc, last_name_lc,
	email_address, email_hash, created_at, deleted_at, merged_at, parent_user_id, version_load, version_line)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[],
	$8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::bigint[], $12::bigint[], $13::bigint[])` + onConflict

// upsert sends the batch as one array per column to a single INSERT ...
// ON CONFLICT: one statement, one round trip, whatever the batch size.
// (Measured against COPY into a temporary table followed by INSERT ...
// SELECT ... ON CONFLICT, which was slower for every kind of batch.)
func (s *Store) upsert(ctx context.Context, batch []viswals.SealedUser, rc *viswals.Receipt, superseded int64) ([]viswals.SealedUser, error) {
	c := toColumns(batch)
	var changed []viswals.SealedUser
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, upsertSQL,
			c.id, c.firstName, c.lastName, c.firstNameLC, c.lastNameLC, c.email, c.hash,
			c.created, c.deleted, c.merged, c.parent, c.load, c.line)
		if err != nil {
			return err
		}
		var inserted int64
		changed, inserted, err = collectChanged(rows, batch)
		if err != nil {
			return err
		}
		if err := notifyIf(ctx, tx, len(changed) > 0); err != nil {
			return err
		}
		updated := int64(len(changed)) - inserted
		return countReceipt(ctx, tx, rc, viswals.Tally{Inserted: inserted, Updated: updated,
			Unchanged: int64(len(batch)) - inserted - updated + superseded})
	})
	return changed, err
}

// copyNew inserts a batch of new ids with COPY. It fails with a unique
// violation, writing nothing, if any id exists.
func (s *Store) copyNew(ctx context.Context, batch []viswals.SealedUser, rc *viswals.Receipt, superseded int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, insertColumns, copySource(batch)); err != nil {
			return err
		}
		if err := notifyIf(ctx, tx, true); err != nil {
			return err
		}
		return countReceipt(ctx, tx, rc, viswals.Tally{Inserted: int64(len(batch)), Unchanged: superseded})
	})
}

func notifyIf(ctx context.Context, tx pgx.Tx, changed bool) error {
	if !changed {
		return nil
	}
	_, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", NotifyChannel)
	return err
}

// collectChanged reads the RETURNING rows (id, changed, inserted) and
// returns the users of batch (sorted by id) whose content was written, and
// how many of them were inserted.
func collectChanged(rows pgx.Rows, batch []viswals.SealedUser) ([]viswals.SealedUser, int64, error) {
	var ids []int64
	var id int64
	var changed, isNew bool
	var inserted int64
	_, err := pgx.ForEachRow(rows, []any{&id, &changed, &isNew}, func() error {
		if changed {
			ids = append(ids, id)
		}
		if isNew {
			inserted++
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	// RETURNING order is unspecified; match the ids against the sorted batch.
	slices.Sort(ids)
	out := make([]viswals.SealedUser, 0, len(ids))
	i := 0
	for _, id := range ids {
		for batch[i].ID != id {
			i++
		}
		out = append(out, batch[i])
	}
	return out, inserted, nil
}

// columns holds a batch column by column, for unnest.
type columns struct {
	id, load, line                                      []int64
	firstName, lastName, firstNameLC, lastNameLC, email []string
	hash                                                [][]byte
	created                                             []time.Time
	deleted, merged                                     []*time.Time
	parent                                              []*int64
}

func toColumns(batch []viswals.SealedUser) columns {
	n := len(batch)
	c := columns{
		id: make([]int64, n), load: make([]int64, n), line: make([]int64, n),
		firstName: make([]string, n), lastName: make([]string, n),
		firstNameLC: make([]string, n), lastNameLC: make([]string, n), email: make([]string, n),
		hash: make([][]byte, n), created: make([]time.Time, n),
		deleted: make([]*time.Time, n), merged: make([]*time.Time, n), parent: make([]*int64, n),
	}
	for i, u := range batch {
		c.id[i], c.load[i], c.line[i] = u.ID, u.Version.Load, u.Version.Line
		c.firstName[i], c.lastName[i] = u.FirstName, u.LastName
		c.firstNameLC[i], c.lastNameLC[i] = viswals.Fold(u.FirstName), viswals.Fold(u.LastName)
		c.email[i], c.hash[i] = u.EmailSealed, u.EmailHash
		c.created[i], c.deleted[i], c.merged[i], c.parent[i] = u.CreatedAt, u.DeletedAt, u.MergedAt, u.ParentUserID
	}
	return c
}

// copyRows feeds a batch to COPY. Values hands pgx pointers into the
// batch and one reused row, which pgx encodes before asking for the next:
// boxing the values themselves cost an allocation per column per row.
type copyRows struct {
	batch           []viswals.SealedUser
	next            int
	row             []any
	firstLC, lastLC string
}

func copySource(batch []viswals.SealedUser) pgx.CopyFromSource {
	return &copyRows{batch: batch}
}

func (r *copyRows) Next() bool {
	r.next++
	return r.next <= len(r.batch)
}

func (r *copyRows) Values() ([]any, error) {
	u := &r.batch[r.next-1]
	r.firstLC, r.lastLC = viswals.Fold(u.FirstName), viswals.Fold(u.LastName)
	// In insertColumns order; the nullable columns are already pointers.
	r.row = append(r.row[:0], &u.ID, &u.FirstName, &u.LastName, &r.firstLC, &r.lastLC,
		&u.EmailSealed, &u.EmailHash, &u.CreatedAt, u.DeletedAt, u.MergedAt, u.ParentUserID,
		&u.Version.Load, &u.Version.Line)
	return r.row, nil
}

func (r *copyRows) Err() error { return nil }
