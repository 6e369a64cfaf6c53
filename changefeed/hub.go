// Package changefeed follows the users table as it changes: streams that
// send a snapshot of the users matching a filter, then every later change,
// resumable from any event by its Cursor (stream.go); the hub that reads
// the changes once per process for all the streams (hub.go); and the
// signed cursors handed to clients (cursor.go). It writes no protocol:
// httpapi turns a stream's events into Server-Sent Events.
package changefeed

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/viswals/viswals"
)

// Source is the store the changefeed reads (*postgres.Store): a snapshot of
// the table, then every change after it, ordered by the position of the
// transaction that wrote it. See stream.go for how the two halves meet
// without gaps.
type Source interface {
	// CurrentSnapshot returns the transaction snapshot of "now".
	CurrentSnapshot(ctx context.Context) (viswals.Snapshot, error)
	// ListVisible calls fn for up to limit users with id > afterID that
	// match f and whose last change is visible in snap, in id order.
	ListVisible(ctx context.Context, f viswals.Filter, afterID int64, limit int, snap viswals.Snapshot, fn func(viswals.SealedUser) error) error
	// CountVisible returns how many users ListVisible would return from
	// afterID on without a limit.
	CountVisible(ctx context.Context, f viswals.Filter, afterID int64, snap viswals.Snapshot) (int64, error)
	// Changes calls fn, in position order, for up to limit changes whose
	// position is after `after` and whose transaction is older than every
	// transaction still running (the horizon it returns); with a filter,
	// at least those that match f now or may have matched it before
	// (postgres.Store.Changes says which). Everything below the horizon is
	// final, so a reader that has seen all rows below it can move to
	// viswals.Pos{Xid: horizon} and never miss a late commit. The horizon
	// is also below the state before of every row whose newer version is
	// not final yet: a reader never passes a state it did not read.
	Changes(ctx context.Context, f viswals.Filter, after viswals.Pos, limit int, fn func(viswals.Change) error) (horizon uint64, err error)
	// Listen calls fn on each change notification until ctx ends or the
	// connection fails.
	Listen(ctx context.Context, fn func()) error
}

// The hub keeps 2,000 live streams from polling Postgres 2,000 times. One
// goroutine per process reads the changefeed (woken by NOTIFY, with a slow
// poll as a fallback), keeps the most recent changes in a ring, and tells
// the streams when there is more. A stream whose position is inside the
// ring reads from memory; one behind it (a client resuming an old cursor,
// or too slow to keep up) reads Postgres with its own queries until it is
// inside again. Streams never block the hub: they only ever take a read
// lock to copy a few pointers.
//
// Because the ring is only a cache of the Postgres changefeed, and every
// position is a Postgres position, a stream's events do not depend on
// which process serves it or whether the ring was there.

// Options tune the hub and its streams; zero values take the defaults.
type Options struct {
	// RingSize is how many recent changes are kept in memory (default 65536).
	RingSize int
	// Batch is how many changes one changefeed read returns (default 1000).
	Batch int
	// MinInterval coalesces bursts of notifications: the hub reads at most
	// once per interval (default 25ms).
	MinInterval time.Duration
	// Poll is the fallback read interval when no notification comes, for a
	// lost LISTEN connection or a change committed by a process that did
	// not notify (default 1s).
	Poll time.Duration
	// PageSize is how many rows one snapshot or catch-up read of a stream
	// fetches (default 500).
	PageSize int
	// Logger gets the hub's read failures; nil discards.
	Logger *slog.Logger
	// Metrics counts the hub's reads; nil counts nothing.
	Metrics *Metrics
}

func (o *Options) defaults() {
	if o.RingSize <= 0 {
		o.RingSize = 1 << 16
	}
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	if o.MinInterval <= 0 {
		o.MinInterval = 25 * time.Millisecond
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// change is one entry of the ring: a row as the changefeed returned it,
// its folded names for filtering, what it held before, and its renderings, one per view (see
// Stream.Render), each made by the first stream that sends it in that view
// and shared by the rest.
type change struct {
	pos                     viswals.Pos
	user                    viswals.SealedUser
	firstFolded, lastFolded string
	before                  viswals.Before
	// readFrom is the position the hub's read that returned the change
	// started from (see Stream.classify).
	readFrom viswals.Pos

	views [Views]rendering
	// id is the signed text of the live cursor right after this change,
	// for one codec (key and filter): the same for every stream of that
	// filter once past its snapshot (see Stream.AppendID).
	id atomic.Pointer[sharedID]
}

// Views is how many renderings of one change the streams may share: one
// for each way of showing a user (for example with the email, or masked).
const Views = 2

type rendering struct {
	once sync.Once
	data []byte
	err  error
}

type sharedID struct {
	codec codecID
	text  []byte
}

// ringState is what a stream learns from hub.since.
type ringState int

const (
	ringOK       ringState = iota // changes returned; wait when there are none
	ringBehind                    // the position is older than the ring: read Postgres
	ringNotReady                  // the hub has not read its first position yet: wait
)

// Hub reads the changefeed for every stream of the process. Run drives
// it; Open starts a stream.
type Hub struct {
	src  Source
	opts Options
	wake chan struct{} // capacity 1: pokes coalesce

	mu    sync.RWMutex
	ready bool
	ring  []*change
	first uint64      // sequence number of the oldest entry
	next  uint64      // sequence number of the next entry
	from  viswals.Pos // the ring holds every change after from...
	pos   viswals.Pos // ...up to and including pos
	// changed is closed, and replaced, whenever pos or ready moves.
	changed chan struct{}
	subs    int
}

// New returns the hub of src. Streams opened before Run send their
// snapshot but no live changes.
func New(src Source, opts Options) *Hub {
	opts.defaults()
	return &Hub{
		src: src, opts: opts,
		wake:    make(chan struct{}, 1),
		ring:    make([]*change, opts.RingSize),
		changed: make(chan struct{}),
	}
}

// poke asks the hub to read the changefeed soon. It never blocks.
func (h *Hub) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// join and leave count live streams: with none, the hub does not read.
func (h *Hub) join() {
	h.mu.Lock()
	h.subs++
	h.mu.Unlock()
	h.poke()
}

func (h *Hub) leave() {
	h.mu.Lock()
	h.subs--
	h.mu.Unlock()
}

// Streams returns the number of streams in their live phase: with none,
// the hub does not read the changefeed.
func (h *Hub) Streams() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.subs
}

// since copies into buf up to len(buf) changes after p and returns how
// many, the position the caller reaches once it has handled them, and a
// channel closed when there is more to read.
func (h *Hub) since(p viswals.Pos, buf []*change) (n int, upTo viswals.Pos, st ringState, more <-chan struct{}) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	switch {
	case !h.ready:
		return 0, p, ringNotReady, h.changed
	case p.Less(h.from):
		return 0, p, ringBehind, h.changed
	}
	count := int(h.next - h.first)
	i := sort.Search(count, func(i int) bool { return p.Less(h.at(h.first + uint64(i)).pos) })
	for ; i < count && n < len(buf); i++ {
		buf[n] = h.at(h.first + uint64(i))
		n++
	}
	switch {
	case i < count:
		upTo = buf[n-1].pos // buf is full; more is waiting
	case p.Less(h.pos):
		upTo = h.pos
	default:
		upTo = p // the caller read ahead of the hub in Postgres
	}
	return n, upTo, ringOK, h.changed
}

func (h *Hub) at(seq uint64) *change { return h.ring[seq%uint64(len(h.ring))] }

// broadcastLocked wakes every waiting stream. h.mu must be held.
func (h *Hub) broadcastLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// Run reads the changefeed until ctx ends. It listens for notifications
// in a second goroutine, which it waits for before returning; it returns
// nil (failed reads are logged and retried).
func (h *Hub) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { h.listen(ctx) })
	defer wg.Wait()

	poll := time.NewTicker(h.opts.Poll)
	defer poll.Stop()
	pause := time.NewTimer(0)
	defer pause.Stop()
	<-pause.C
	// target is the xmax of a snapshot taken after a notification: the
	// notifying commit is below it. A notified commit can sit above the
	// horizon (behind an older transaction still running, perhaps in
	// another database of the cluster, which sends no notification when
	// it ends), so until the position reaches target the hub reads again
	// every MinInterval instead of waiting for the next wake-up.
	var target uint64
	for {
		notified := false
		if h.behind(target) {
			select {
			case <-h.wake:
				notified = true
			default:
			}
		} else {
			select {
			case <-ctx.Done():
				return nil
			case <-h.wake:
				notified = true
			case <-poll.C:
			}
		}
		target = h.step(ctx, notified, target)
		// Wait before the next read, so that a burst of commits costs one
		// read per interval however many notifications it sends.
		pause.Reset(h.opts.MinInterval)
		select {
		case <-ctx.Done():
			return nil
		case <-pause.C:
		}
	}
}

// behind reports whether the ring has not yet reached target.
func (h *Hub) behind(target uint64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.ready && h.subs > 0 && h.pos.Xid < target
}

// listen keeps a LISTEN connection open, reconnecting with backoff.
func (h *Hub) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := h.src.Listen(ctx, h.poke)
		if ctx.Err() != nil {
			return
		}
		h.opts.Metrics.errors.Inc()
		h.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "changefeed listen failed; polling until it is back",
			slog.Any("err", err), slog.Duration("retry_in", backoff))
		if time.Since(start) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 10*time.Second)
		h.poke() // catch up on what was missed while not listening
	}
}

// step brings the ring up to date with the changefeed and returns the
// new target (see run).
func (h *Hub) step(ctx context.Context, notified bool, target uint64) uint64 {
	h.mu.RLock()
	subs, ready, pos := h.subs, h.ready, h.pos
	h.mu.RUnlock()
	if subs == 0 {
		// Nobody to serve: drop the ring rather than keep reading. The next
		// stream starts it again at the current position; streams are
		// correct either way, since anything older comes from Postgres.
		if ready {
			h.mu.Lock()
			if h.subs == 0 {
				h.resetLocked()
			}
			h.mu.Unlock()
		}
		return 0
	}
	if notified || !ready {
		snap, err := h.src.CurrentSnapshot(ctx)
		if err != nil {
			h.failed(ctx, err)
			return target
		}
		target = max(target, snap.Xmax)
		if !ready {
			h.mu.Lock()
			h.from, h.pos, h.ready = viswals.Pos{Xid: snap.Xmin}, viswals.Pos{Xid: snap.Xmin}, true
			h.broadcastLocked()
			pos = h.pos
			h.mu.Unlock()
		}
	}
	batch := make([]*change, 0, h.opts.Batch)
	for ctx.Err() == nil {
		batch = batch[:0]
		horizon, err := h.src.Changes(ctx, viswals.Filter{}, pos, h.opts.Batch, func(c viswals.Change) error {
			batch = append(batch, &change{pos: c.Pos, user: c.User, before: c.Before, readFrom: pos,
				firstFolded: viswals.Fold(c.User.FirstName), lastFolded: viswals.Fold(c.User.LastName)})
			return nil
		})
		if err != nil {
			h.failed(ctx, err)
			return target
		}
		h.opts.Metrics.changes.Add(float64(len(batch)))
		full := len(batch) == h.opts.Batch
		h.mu.Lock()
		for _, c := range batch {
			h.appendLocked(c)
		}
		// A short read saw everything below the horizon: all of it is
		// final, so the position moves to the horizon even with no rows.
		if !full && h.pos.Less(viswals.Pos{Xid: horizon}) {
			h.pos = viswals.Pos{Xid: horizon}
		}
		if h.pos != pos {
			h.broadcastLocked()
		}
		pos = h.pos
		h.mu.Unlock()
		if !full {
			break
		}
	}
	return target
}

// appendLocked adds c, evicting the oldest entry when the ring is full.
func (h *Hub) appendLocked(c *change) {
	if h.next-h.first == uint64(len(h.ring)) {
		old := h.at(h.first)
		h.from = old.pos
		h.ring[h.first%uint64(len(h.ring))] = nil
		h.first++
	}
	h.ring[h.next%uint64(len(h.ring))] = c
	h.next++
	h.pos = c.pos
}

func (h *Hub) resetLocked() {
	clear(h.ring)
	h.first, h.next = 0, 0
	h.from, h.pos = viswals.Pos{}, viswals.Pos{}
	h.ready = false
	h.broadcastLocked()
}

func (h *Hub) failed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	h.opts.Metrics.errors.Inc()
	h.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "changefeed read failed; retrying", slog.String("err", err.Error()))
}
