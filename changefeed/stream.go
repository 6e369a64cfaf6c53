package changefeed

import (
	"bytes"
	"context"

	"github.com/viswals/viswals"
)

// A stream sends every user matching a filter: first a snapshot of the
// table in id order, then every change committed after it. The two halves
// meet exactly, without gaps or repeats, through a Postgres transaction
// snapshot taken when the stream opens:
//
//   - Snapshot phase: the rows whose last change is visible in the
//     snapshot, paged by id (Source.ListVisible).
//   - Live phase: the changefeed from the snapshot's xmin, in (xid, id)
//     order, skipping changes visible in the snapshot (already sent). Once
//     the position passes the snapshot's xmax every change qualifies and
//     the snapshot is dropped from the cursor.
//
// The changefeed only returns transactions older than every running one,
// so a transaction that commits late is read late, never skipped. Every
// event carries a cursor holding the phase, the snapshot and the position,
// so a client resumes from it on any process.

// Every stream sends, in order: one EventSnapshot announcing how many
// users its snapshot phase sends (0 for a stream resumed in its live
// phase); those users; one EventLive; then the changes, as EventUser for
// a user that matches the filter and EventLeave for one that matched and
// no longer does.
//
// A leave needs to know what the stream showed of the user, which only
// the client knows. The store keeps, for the last change of each row, the
// names before it and the position of the change before (viswals.Before):
// a stream that saw that state leaves when those names matched; one that
// did not (two changes of one user since its position) cannot tell, and
// sends a leave, which removes nothing from a client that never had the
// user. Leaves are never missed, and rarely sent for a user the client
// does not have.

// EventKind is what an event says.
type EventKind uint8

// The kinds of event.
const (
	EventUser     EventKind = iota // User matches the filter
	EventLeave                     // User (only its id counts) matched the filter and no longer does
	EventSnapshot                  // the first event: Size is how many users the snapshot phase sends
	EventLive                      // the snapshot phase is over
)

// Event is one thing a stream sends: a user, a leave, or one of the
// markers of its phases. User and leave events, and EventLive, carry the
// cursor that resumes the stream right after them; EventSnapshot carries
// none (resuming there is opening the stream again).
type Event struct {
	Kind   EventKind
	Cursor Cursor
	User   *viswals.SealedUser // user and leave
	// Size is, for EventSnapshot, the number of users the snapshot phase
	// sends, counted when the stream opens: a user changed during the
	// snapshot phase moves to the live phase, so it may send fewer.
	Size   int64
	shared *change // set for a change from the hub's ring
}

// Stream is one subscriber's walk through the changefeed. It is not safe
// for concurrent use.
type Stream struct {
	hub     *Hub
	filter  viswals.Filter
	folded  viswals.Filter // filter.Folded(), for matching ring entries
	cur     Cursor         // the position after the last event returned
	joined  bool           // counted by the hub as a live stream
	started bool           // the snapshot event was returned

	rows    []viswals.SealedUser
	changes []*change
	events  []Event
	scratch []byte
}

// Open starts a stream of the users matching f: from resume, a cursor of
// kind KindSnapshot or KindLive that an earlier stream of f returned, or,
// when resume is nil, from a snapshot taken now. Close it when done.
func (h *Hub) Open(ctx context.Context, f viswals.Filter, resume *Cursor) (*Stream, error) {
	s := &Stream{hub: h, filter: f, folded: f.Folded()}
	if resume != nil {
		s.cur = *resume
		return s, nil
	}
	snap, err := h.src.CurrentSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	s.cur = Cursor{Kind: KindSnapshot, Snap: snap, HasSnap: true}
	return s, nil
}

// liveBatch bounds how many ring entries a stream copies at once.
const liveBatch = 32

// Close ends the stream.
func (s *Stream) Close() {
	if s.joined {
		s.hub.leave()
		s.joined = false
	}
}

// Next returns the events available now, in order, valid until the next
// call, and a channel: nil when Next has more at once (call it again),
// otherwise closed once there may be more. In the snapshot phase and
// while behind the hub's ring it reads the store, a page at a time;
// in the live phase it copies from the ring.
func (s *Stream) Next(ctx context.Context) ([]Event, <-chan struct{}, error) {
	clear(s.events) // do not keep evicted ring entries alive
	s.events = s.events[:0]
	if !s.started {
		return s.events, nil, s.start(ctx)
	}
	if s.cur.Kind == KindSnapshot {
		return s.events, nil, s.snapshot(ctx)
	}
	if !s.joined {
		s.hub.join()
		s.joined = true
		// Copying from the ring is cheap, so a small batch costs little,
		// while every open stream holds its batch and the events made
		// from it.
		s.changes = make([]*change, min(s.hub.opts.PageSize, liveBatch))
	}
	n, upTo, st, more := s.hub.since(s.cur.Pos, s.changes)
	switch st {
	case ringBehind:
		return s.events, nil, s.catchUp(ctx)
	case ringOK:
		if n > 0 || s.cur.Pos != upTo {
			s.fromRing(s.changes[:n], upTo)
			if n == len(s.changes) {
				return s.events, nil, nil // the ring has more right now
			}
		}
	}
	return s.events, more, nil
}

// Render returns render's bytes for e's user: for a row read from the
// store, render(scratch, user) with the stream's scratch buffer, valid
// until the next Render; for a change from the hub's ring, the bytes of
// render(nil, user) as the first stream that sent the change in view got
// them, shared by every stream (so render must be the same for every
// stream that passes the same view, 0 <= view < Views).
func (s *Stream) Render(e *Event, view int, render func(dst []byte, u *viswals.SealedUser) ([]byte, error)) ([]byte, error) {
	if c := e.shared; c != nil {
		v := &c.views[view]
		v.once.Do(func() { v.data, v.err = render(nil, &c.user) })
		return v.data, v.err
	}
	var err error
	s.scratch, err = render(s.scratch[:0], e.User)
	return s.scratch, err
}

// AppendID appends e's cursor as cc writes it. A live cursor past the
// snapshot depends only on the position, so for a change from the hub's
// ring the text is signed once per codec (key and filter) and shared by
// every stream that sends the change: thousands of streams of one filter
// do not each compute the same signature.
func (s *Stream) AppendID(dst []byte, e *Event, cc *Codec) []byte {
	c := e.shared
	if c == nil || e.Cursor.Kind != KindLive || e.Cursor.HasSnap {
		return cc.Append(dst, e.Cursor)
	}
	if id := c.id.Load(); id != nil && id.codec == cc.id {
		return append(dst, id.text...)
	}
	start := len(dst)
	dst = cc.Append(dst, e.Cursor)
	c.id.Store(&sharedID{codec: cc.id, text: bytes.Clone(dst[start:])})
	return dst
}

// start returns the snapshot event, with the number of users left to
// send in the snapshot phase, and the live event at once for a stream
// resumed in the live phase.
func (s *Stream) start(ctx context.Context) error {
	var size int64
	if s.cur.Kind == KindSnapshot {
		var err error
		if size, err = s.hub.src.CountVisible(ctx, s.filter, s.cur.AfterID, s.cur.Snap); err != nil {
			return err
		}
	}
	s.started = true
	s.events = append(s.events, Event{Kind: EventSnapshot, Size: size})
	if s.cur.Kind == KindLive {
		s.events = append(s.events, Event{Kind: EventLive, Cursor: s.cur})
	}
	return nil
}

// snapshot returns one page of the rows visible in the snapshot, and
// moves the stream to the live phase after the last page.
func (s *Stream) snapshot(ctx context.Context) error {
	clear(s.rows)
	s.rows = s.rows[:0]
	pageSize := s.hub.opts.PageSize
	// The page is collected before it is sent, so a slow client never
	// holds a database connection.
	err := s.hub.src.ListVisible(ctx, s.filter, s.cur.AfterID, pageSize, s.cur.Snap, func(u viswals.SealedUser) error {
		s.rows = append(s.rows, u)
		return nil
	})
	if err != nil {
		return err
	}
	for i := range s.rows {
		s.cur.AfterID = s.rows[i].ID
		s.events = append(s.events, Event{Kind: EventUser, Cursor: s.cur, User: &s.rows[i]})
	}
	if len(s.rows) < pageSize {
		s.cur = Cursor{Kind: KindLive, Snap: s.cur.Snap, HasSnap: true, Pos: viswals.Pos{Xid: s.cur.Snap.Xmin}}
		s.dropPassedSnapshot()
		s.events = append(s.events, Event{Kind: EventLive, Cursor: s.cur})
	}
	return nil
}

// fromRing returns the ring's changes that the stream wants, then moves
// to upTo.
func (s *Stream) fromRing(changes []*change, upTo viswals.Pos) {
	for _, c := range changes {
		kind, ok := s.classify(c.pos, c.firstFolded, c.lastFolded, c.before, c.readFrom)
		s.cur.Pos = c.pos
		if ok {
			s.events = append(s.events, Event{Kind: kind, Cursor: s.cur, User: &c.user, shared: c})
		}
	}
	clear(changes) // do not keep evicted entries alive
	s.cur.Pos = upTo
	s.dropPassedSnapshot()
}

// catchUp reads one page of the changefeed from the store, for a stream
// whose position is older than the hub's ring.
func (s *Stream) catchUp(ctx context.Context) error {
	var rows []viswals.Change
	pageSize := s.hub.opts.PageSize
	horizon, err := s.hub.src.Changes(ctx, s.filter, s.cur.Pos, pageSize, func(c viswals.Change) error {
		rows = append(rows, c)
		return nil
	})
	if err != nil {
		return err
	}
	from := s.cur.Pos
	for i := range rows {
		c := &rows[i]
		kind, ok := s.classify(c.Pos, viswals.Fold(c.User.FirstName), viswals.Fold(c.User.LastName), c.Before, from)
		s.cur.Pos = c.Pos
		if ok {
			s.events = append(s.events, Event{Kind: kind, Cursor: s.cur, User: &c.User})
		}
	}
	if len(rows) < pageSize && s.cur.Pos.Less(viswals.Pos{Xid: horizon}) {
		s.cur.Pos = viswals.Pos{Xid: horizon} // everything below the horizon is read
	}
	s.dropPassedSnapshot()
	return nil
}

// classify tells what the change at pos, leaving the user with the
// folded names first and last, means to the stream: a user, a leave (see
// EventKind), or nothing. from is where the read that returned the change
// (the hub's or the stream's) started.
func (s *Stream) classify(pos viswals.Pos, first, last string, before viswals.Before, from viswals.Pos) (EventKind, bool) {
	if s.cur.HasSnap && s.cur.Snap.Visible(pos.Xid) {
		return 0, false // sent in the snapshot phase
	}
	if s.folded.Match(first, last) {
		return EventUser, true
	}
	if !before.Exists {
		return 0, false // a new user the filter does not want
	}
	if s.folded.Match(before.FirstFolded, before.LastFolded) {
		return EventLeave, true
	}
	// The state before did not match, but a stream that never saw it may
	// have shown an older one that did. A state at or before where the read
	// started was returned by an earlier read (the store holds a read back rather
	// than let it pass a state whose row moved on, see Source.Changes), so
	// the stream handled it; so was a state visible in the snapshot: the
	// snapshot phase read the row after it was written.
	seen := !from.Less(viswals.Pos{Xid: before.Xid, ID: pos.ID}) ||
		(s.cur.HasSnap && s.cur.Snap.Visible(before.Xid))
	return EventLeave, !seen
}

// dropPassedSnapshot forgets the snapshot once no later change can be
// visible in it, which keeps cursors short.
func (s *Stream) dropPassedSnapshot() {
	if s.cur.Kind == KindLive && s.cur.HasSnap && s.cur.Pos.Xid >= s.cur.Snap.Xmax {
		s.cur.HasSnap, s.cur.Snap = false, viswals.Snapshot{}
	}
}
