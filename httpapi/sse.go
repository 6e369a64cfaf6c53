package httpapi

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/viswals/viswals"
)

// GET /users/sse streams every user matching the filters: first a snapshot
// of the table in id order, then every change committed after it. The two
// halves meet exactly, without gaps or repeats, through a Postgres
// transaction snapshot taken when the stream opens:
//
//   - viswals.Snapshot phase: the rows whose last change is visible in the
//     snapshot, paged by id (Feed.ListVisible).
//   - Live phase: the changefeed from the snapshot's xmin, in (xid, id)
//     order, skipping changes visible in the snapshot (already sent). Once
//     the position passes the snapshot's xmax every change qualifies and
//     the snapshot is dropped from the cursor.
//
// The changefeed only returns transactions older than every running one,
// so a transaction that commits late is read late, never skipped. Every
// event id is a signed cursor holding the phase, the snapshot and the
// position, so a client resumes (Last-Event-ID) on any API process.

// SSEOptions tune the streams; zero values take the defaults.
type SSEOptions struct {
	// Heartbeat is how often an idle stream sends a ": ping" comment
	// (default 15s), so proxies and clients see the connection is alive.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to the client (default 30s); a client
	// that does not read for that long is disconnected. It replaces the
	// server's WriteTimeout, which would otherwise cut every stream.
	WriteTimeout time.Duration
	// PageSize is how many rows one snapshot or catch-up read fetches
	// (default 500).
	PageSize int
	// Retry is the reconnection delay suggested to clients (default 2s).
	Retry time.Duration
}

func (o *SSEOptions) defaults() {
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	if o.Retry <= 0 {
		o.Retry = 2 * time.Second
	}
}

// errLimit ends a stream that has sent the number of users asked for.
var errLimit = errors.New("limit reached")

func handleSSE(feed Feed, keys Opener, hub *hub, cursorKey []byte, opts SSEOptions, log *slog.Logger, m *metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, codec, err := parseStreamParams(r.URL.RawQuery, r.Header.Get("Last-Event-ID"), cursorKey)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		ctx := r.Context()
		var start cursor
		if p.resume != nil {
			start = *p.resume
		} else {
			snap, err := feed.CurrentSnapshot(ctx)
			if err != nil {
				writeError(w, r, log, err)
				return
			}
			start = cursor{kind: kindSnapshot, snap: snap, hasSnap: true}
		}
		s := &stream{
			w: w, rc: http.NewResponseController(w), bw: bufio.NewWriterSize(w, 16<<10),
			codec: codec, feed: feed, keys: keys, hub: hub, opts: opts, metrics: m,
			filter: p.filter, folded: p.filter.Folded(), limit: p.limit, cur: start,
		}
		m.sseSubscribers.Inc()
		defer m.sseSubscribers.Dec()
		if err := s.run(ctx); err != nil && !errors.Is(err, errLimit) && ctx.Err() == nil {
			// The reply is a 200 already; the client reconnects and resumes.
			log.LogAttrs(ctx, slog.LevelWarn, "sse stream ended", slog.String("err", err.Error()))
		}
	})
}

// stream is one SSE client's state.
type stream struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	bw    *bufio.Writer
	codec *cursorCodec
	feed  Feed
	keys  Opener
	hub   *hub
	opts  SSEOptions

	metrics     *metrics
	filter      viswals.Filter
	folded      viswals.Filter // filter.Folded(), for matching ring entries
	limit, sent int
	cur         cursor // the position after the last event sent

	rows    []viswals.SealedUser
	changes []*change
	scratch []byte
}

func (s *stream) run(ctx context.Context) error {
	// The server's WriteTimeout would cut the first write after it
	// expires: a stream bounds each write instead (deadline). Its read
	// deadline is cleared too, in case a request body kept ReadTimeout's.
	s.rc.SetReadDeadline(time.Time{})
	s.deadline()
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
	s.bw.WriteString("retry: ")
	s.bw.WriteString(strconv.FormatInt(s.opts.Retry.Milliseconds(), 10))
	s.bw.WriteString("\n\n")
	if err := s.flush(); err != nil {
		return err
	}
	if s.cur.kind == kindSnapshot {
		if err := s.snapshot(ctx); err != nil {
			return err
		}
	}
	return s.live(ctx)
}

// snapshot sends the rows visible in the snapshot, page by page, then
// moves the stream to the live phase.
func (s *stream) snapshot(ctx context.Context) error {
	for {
		s.rows = s.rows[:0]
		// The page is collected before it is sent, so a slow client never
		// holds a database connection.
		err := s.feed.ListVisible(ctx, s.filter, s.cur.afterID, s.opts.PageSize, s.cur.snap, func(u viswals.SealedUser) error {
			s.rows = append(s.rows, u)
			return nil
		})
		if err != nil {
			return err
		}
		s.deadline()
		for i := range s.rows {
			s.cur.afterID = s.rows[i].ID
			if err := s.sendSealed(&s.rows[i]); err != nil {
				return err
			}
		}
		if err := s.flush(); err != nil {
			return err
		}
		if len(s.rows) < s.opts.PageSize {
			break
		}
	}
	clear(s.rows)
	s.cur = cursor{kind: kindLive, snap: s.cur.snap, hasSnap: true, pos: viswals.Pos{Xid: s.cur.snap.Xmin}}
	s.dropPassedSnapshot()
	return nil
}

// live sends changes as they commit, from the hub's ring when the stream's
// position is in it, from Postgres when it is behind.
func (s *stream) live(ctx context.Context) error {
	s.hub.join()
	defer s.hub.leave()
	s.changes = make([]*change, s.opts.PageSize)
	heartbeat := time.NewTicker(s.opts.Heartbeat)
	defer heartbeat.Stop()
	for {
		n, upTo, st, more := s.hub.since(s.cur.pos, s.changes)
		switch st {
		case ringBehind:
			if err := s.catchUp(ctx); err != nil {
				return err
			}
			continue
		case ringOK:
			if n > 0 || s.cur.pos != upTo {
				if err := s.sendRing(s.changes[:n], upTo); err != nil {
					return err
				}
				if n == len(s.changes) {
					continue // the ring has more right now
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-more:
		case <-heartbeat.C:
			s.deadline()
			s.bw.WriteString(": ping\n\n")
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
}

// sendRing sends the ring's changes that the stream wants, then moves to
// upTo.
func (s *stream) sendRing(changes []*change, upTo viswals.Pos) error {
	s.deadline()
	sent := false
	for _, c := range changes {
		s.cur.pos = c.pos
		if !s.wants(c) {
			continue
		}
		data, err := c.json(s.keys)
		if err != nil {
			return err
		}
		sent = true
		if err := s.event(data); err != nil {
			return err
		}
	}
	clear(changes) // do not keep evicted entries alive
	s.cur.pos = upTo
	s.dropPassedSnapshot()
	if sent {
		return s.flush()
	}
	return nil
}

// catchUp reads one page of the changefeed from Postgres, for a stream
// whose position is older than the hub's ring.
func (s *stream) catchUp(ctx context.Context) error {
	type row struct {
		pos  viswals.Pos
		user viswals.SealedUser
	}
	var rows []row
	horizon, err := s.feed.Changes(ctx, s.filter, s.cur.pos, s.opts.PageSize, func(p viswals.Pos, u viswals.SealedUser) error {
		rows = append(rows, row{p, u})
		return nil
	})
	if err != nil {
		return err
	}
	s.deadline()
	for i := range rows {
		s.cur.pos = rows[i].pos
		if s.cur.hasSnap && s.cur.snap.Visible(rows[i].pos.Xid) {
			continue // sent in the snapshot phase
		}
		if err := s.sendSealed(&rows[i].user); err != nil {
			return err
		}
	}
	if len(rows) < s.opts.PageSize && s.cur.pos.Less(viswals.Pos{Xid: horizon}) {
		s.cur.pos = viswals.Pos{Xid: horizon} // everything below the horizon is read
	}
	s.dropPassedSnapshot()
	return s.flush()
}

// wants applies the stream's filters and snapshot to a ring entry.
func (s *stream) wants(c *change) bool {
	if s.cur.hasSnap && s.cur.snap.Visible(c.pos.Xid) {
		return false
	}
	return s.folded.Match(c.firstFolded, c.lastFolded)
}

// dropPassedSnapshot forgets the snapshot once no later change can be
// visible in it, which keeps cursors short.
func (s *stream) dropPassedSnapshot() {
	if s.cur.kind == kindLive && s.cur.hasSnap && s.cur.pos.Xid >= s.cur.snap.Xmax {
		s.cur.hasSnap, s.cur.snap = false, viswals.Snapshot{}
	}
}

func (s *stream) sendSealed(u *viswals.SealedUser) error {
	user, err := s.keys.Open(*u)
	if err != nil {
		return err
	}
	s.scratch = appendUser(s.scratch[:0], &user)
	return s.event(s.scratch)
}

// event writes one user event whose id is the stream's current cursor.
func (s *stream) event(data []byte) error {
	s.bw.WriteString("event: user\nid: ")
	s.bw.Write(s.codec.appendCursor(s.bw.AvailableBuffer(), s.cur))
	s.bw.WriteString("\ndata: ")
	s.bw.Write(data)
	if _, err := s.bw.WriteString("\n\n"); err != nil {
		return err
	}
	s.metrics.sseEvents.Inc()
	s.sent++
	if s.sent == s.limit {
		if err := s.flush(); err != nil {
			return err
		}
		return errLimit
	}
	return nil
}

func (s *stream) flush() error {
	if err := s.bw.Flush(); err != nil {
		return err
	}
	return s.rc.Flush()
}

// deadline gives the next writes WriteTimeout to complete.
func (s *stream) deadline() {
	s.rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
}
