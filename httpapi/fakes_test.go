package httpapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/viswals/viswals"
)

// memDB is an in-memory users table with Postgres' transaction semantics,
// as far as the API can tell: every write belongs to a transaction with an
// xid, transactions commit in any order, and a snapshot lists the ones
// still running. It implements Store and Feed.
type memDB struct {
	mu        sync.Mutex
	rows      map[int64]memRow
	nextXid   uint64
	running   map[uint64]bool
	listeners map[int]func()
	nextL     int

	// failures to inject
	listErr      error // List and ListVisible fail with it
	listErrAfter int   // ...after this many rows
	getErr       error
	changesErr   error
	snapErr      error
	gets         int // Get calls
	changesCalls int
}

type memRow struct {
	user   viswals.SealedUser
	xid    uint64
	before viswals.Before
}

func newMemDB() *memDB {
	return &memDB{rows: map[int64]memRow{}, nextXid: 100, running: map[uint64]bool{}, listeners: map[int]func(){}}
}

// memTx is a transaction: writes apply when it commits.
type memTx struct {
	db    *memDB
	xid   uint64
	users []viswals.SealedUser
}

func (db *memDB) begin() *memTx {
	db.mu.Lock()
	defer db.mu.Unlock()
	tx := &memTx{db: db, xid: db.nextXid}
	db.nextXid++
	db.running[tx.xid] = true
	return tx
}

func (tx *memTx) put(users ...viswals.SealedUser) *memTx {
	tx.users = append(tx.users, users...)
	return tx
}

func (tx *memTx) commit() {
	db := tx.db
	db.mu.Lock()
	for _, u := range tx.users {
		r := memRow{user: u, xid: tx.xid}
		if old, ok := db.rows[u.ID]; ok {
			r.before = viswals.Before{Exists: true, Xid: old.xid,
				FirstFolded: viswals.Fold(old.user.FirstName), LastFolded: viswals.Fold(old.user.LastName)}
		}
		db.rows[u.ID] = r
	}
	delete(db.running, tx.xid)
	ls := make([]func(), 0, len(db.listeners))
	for _, fn := range db.listeners {
		ls = append(ls, fn)
	}
	db.mu.Unlock()
	for _, fn := range ls {
		fn()
	}
}

// insert writes users in a transaction of their own.
func (db *memDB) insert(users ...viswals.SealedUser) { db.begin().put(users...).commit() }

func (db *memDB) snapshotLocked() viswals.Snapshot {
	s := viswals.Snapshot{Xmin: db.nextXid, Xmax: db.nextXid}
	for x := range db.running {
		s.Xip = append(s.Xip, x)
		s.Xmin = min(s.Xmin, x)
	}
	slices.Sort(s.Xip)
	return s
}

func (db *memDB) Get(ctx context.Context, id int64) (viswals.SealedUser, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.gets++
	if db.getErr != nil {
		return viswals.SealedUser{}, db.getErr
	}
	r, ok := db.rows[id]
	if !ok {
		return viswals.SealedUser{}, viswals.Errorf(viswals.ENOTFOUND, "user %d not found", id)
	}
	return r.user, nil
}

func matchFilter(f viswals.Filter, u viswals.SealedUser) bool {
	return strings.HasPrefix(strings.ToLower(u.FirstName), strings.ToLower(f.FirstName)) &&
		strings.HasPrefix(strings.ToLower(u.LastName), strings.ToLower(f.LastName))
}

func (db *memDB) List(ctx context.Context, f viswals.Filter, afterID int64, limit int, fn func(viswals.SealedUser) error) error {
	return db.list(ctx, f, afterID, limit, nil, fn)
}

func (db *memDB) ListVisible(ctx context.Context, f viswals.Filter, afterID int64, limit int, snap viswals.Snapshot, fn func(viswals.SealedUser) error) error {
	return db.list(ctx, f, afterID, limit, &snap, fn)
}

func (db *memDB) list(ctx context.Context, f viswals.Filter, afterID int64, limit int, snap *viswals.Snapshot, fn func(viswals.SealedUser) error) error {
	db.mu.Lock()
	var page []viswals.SealedUser
	for _, r := range db.rows {
		if r.user.ID > afterID && matchFilter(f, r.user) && (snap == nil || snap.Visible(r.xid)) {
			page = append(page, r.user)
		}
	}
	listErr, after := db.listErr, db.listErrAfter
	db.mu.Unlock()
	slices.SortFunc(page, func(a, b viswals.SealedUser) int { return cmp.Compare(a.ID, b.ID) })
	page = page[:min(limit, len(page))]
	for i, u := range page {
		if listErr != nil && i == after {
			return listErr
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	if listErr != nil && after >= len(page) {
		return listErr
	}
	return nil
}

func (db *memDB) CurrentSnapshot(ctx context.Context) (viswals.Snapshot, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.snapErr != nil {
		return viswals.Snapshot{}, db.snapErr
	}
	return db.snapshotLocked(), nil
}

func (db *memDB) CountVisible(ctx context.Context, f viswals.Filter, afterID int64, snap viswals.Snapshot) (int64, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	var n int64
	for _, r := range db.rows {
		if r.user.ID > afterID && matchFilter(f, r.user) && snap.Visible(r.xid) {
			n++
		}
	}
	return n, nil
}

// Changes returns the changes of the users that match f, and those whose
// names before matched: a superset of the changes a stream of f uses
// (what Store.Changes promises).
func (db *memDB) Changes(ctx context.Context, f viswals.Filter, after viswals.Pos, limit int, fn func(viswals.Change) error) (uint64, error) {
	db.mu.Lock()
	db.changesCalls++
	if db.changesErr != nil {
		db.mu.Unlock()
		return 0, db.changesErr
	}
	horizon := db.snapshotLocked().Xmin
	var out []viswals.Change
	for _, r := range db.rows {
		p := viswals.Pos{Xid: r.xid, ID: r.user.ID}
		if after.Less(p) && r.xid < horizon && (matchFilter(f, r.user) || r.before.Exists) {
			out = append(out, viswals.Change{Pos: p, User: r.user, Before: r.before})
		}
	}
	db.mu.Unlock()
	slices.SortFunc(out, func(a, b viswals.Change) int {
		if a.Pos.Less(b.Pos) {
			return -1
		}
		if b.Pos.Less(a.Pos) {
			return 1
		}
		return 0
	})
	out = out[:min(limit, len(out))]
	for _, c := range out {
		if err := fn(c); err != nil {
			return 0, err
		}
	}
	return horizon, nil
}

func (db *memDB) Listen(ctx context.Context, fn func()) error {
	db.mu.Lock()
	id := db.nextL
	db.nextL++
	db.listeners[id] = fn
	db.mu.Unlock()
	fn()
	<-ctx.Done()
	db.mu.Lock()
	delete(db.listeners, id)
	db.mu.Unlock()
	return ctx.Err()
}

// memUsers is the UserReader over memDB, emails opened with fakeKeys.
// Like a real store, it reads nothing for a caller that has gone.
type memUsers struct{ db *memDB }

func (m memUsers) Get(ctx context.Context, id int64) (viswals.User, error) {
	if err := ctx.Err(); err != nil {
		return viswals.User{}, err
	}
	s, err := m.db.Get(ctx, id)
	if err != nil {
		return viswals.User{}, err
	}
	return fakeKeys{}.Open(s)
}

func (m memUsers) List(ctx context.Context, f viswals.Filter, afterID int64, limit int, fn func(viswals.User) error) error {
	return m.db.List(ctx, f, afterID, limit, func(s viswals.SealedUser) error {
		u, err := fakeKeys{}.Open(s)
		if err != nil {
			return err
		}
		return fn(u)
	})
}

// fakeKeys "seals" an email as "sealed:" + email.
type fakeKeys struct{}

func seal(u viswals.User) viswals.SealedUser {
	return viswals.SealedUser{ID: u.ID, FirstName: u.FirstName, LastName: u.LastName,
		EmailSealed: "sealed:" + u.Email, CreatedAt: u.CreatedAt, DeletedAt: u.DeletedAt,
		MergedAt: u.MergedAt, ParentUserID: u.ParentUserID}
}

func (fakeKeys) Open(s viswals.SealedUser) (viswals.User, error) {
	email, ok := strings.CutPrefix(s.EmailSealed, "sealed:")
	if !ok {
		return viswals.User{}, errors.New("cannot open email")
	}
	return viswals.User{ID: s.ID, FirstName: s.FirstName, LastName: s.LastName, Email: email,
		CreatedAt: s.CreatedAt, DeletedAt: s.DeletedAt, MergedAt: s.MergedAt, ParentUserID: s.ParentUserID}, nil
}

// testUser returns a plausible user with the given id and names.
func testUser(id int64, first, last string) viswals.SealedUser {
	return seal(viswals.User{ID: id, FirstName: first, LastName: last,
		Email:     fmt.Sprintf("user%d@example.com", id),
		CreatedAt: time.UnixMilli(1700000000000 + id).UTC()})
}

// abort ends tx without writing anything and without a notification, like
// a transaction of another application sharing the server.
func (tx *memTx) abort() {
	tx.db.mu.Lock()
	delete(tx.db.running, tx.xid)
	tx.db.mu.Unlock()
}
