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
	"github.com/viswals/viswals/auth"
	"github.com/viswals/viswals/changefeed"
)

// GET /users/sse writes a changefeed stream (see the changefeed package)
// as Server-Sent Events: first "event: snapshot" with the snapshot's size,
// then each user as "event: user", "event: live" when the snapshot is
// sent, and later "event: leave" for a user that no longer matches. Users,
// leaves and live carry the stream's cursor after them as the event id,
// from which a client resumes (Last-Event-ID) on any API process.

// SSEOptions tune the streams; zero values take the defaults.
type SSEOptions struct {
	// Heartbeat is how often an idle stream sends a ": ping" comment
	// (default 15s), so proxies and clients see the connection is alive.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to the client (default 10s); a client
	// that does not read for that long is disconnected. It replaces the
	// server's WriteTimeout, which would otherwise cut every stream.
	WriteTimeout time.Duration
	// SendBuffer is the kernel send buffer of a stream's connection
	// (default 32 KiB; Linux doubles it for its bookkeeping). A client
	// that stops reading fills it, and the stream's own buffer,
	// then blocks the stream's writes until WriteTimeout drops it: what
	// such a client holds is bounded by these, not by how fast the link
	// was.
	SendBuffer int
	// Retry is the reconnection delay suggested to clients (default 2s).
	Retry time.Duration
}

func (o *SSEOptions) defaults() {
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.SendBuffer <= 0 {
		o.SendBuffer = 32 << 10
	}
	if o.Retry <= 0 {
		o.Retry = 2 * time.Second
	}
}

// sseBufferSize is each stream's write buffer. net/http buffers again
// below it, so a bigger one saves few system calls, and with thousands of
// streams open it is most of their memory.
const sseBufferSize = 4 << 10

// errLimit ends a stream that has sent the number of users and leaves
// asked for.
var errLimit = errors.New("limit reached")

func handleSSE(feed *changefeed.Hub, keys Opener, cursorKey []byte, opts SSEOptions, log *slog.Logger, m *metrics, audit func(*http.Request, int)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, codec, err := parseStreamParams(r.URL.RawQuery, r.Header.Get("Last-Event-ID"), cursorKey)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		ctx := r.Context()
		// A stream ends when its principal's credential does (a session,
		// a JWT), so that it cannot outlive it: the client's reconnection
		// is then refused, and the page asks to sign in again.
		if who, _ := principalOf(ctx); !who.Expires.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, who.Expires)
			defer cancel()
		}
		stream, err := feed.Open(ctx, p.filter, p.resume)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		limitSendBuffer(ctx, opts.SendBuffer)
		m.sseSubscribers.Inc()
		defer m.sseSubscribers.Dec()
		defer stream.Close()
		s := &sseWriter{
			w: w, rc: http.NewResponseController(w), bw: bufio.NewWriterSize(w, sseBufferSize),
			codec: codec, stream: stream, keys: keys, opts: opts, metrics: m, limit: p.limit,
			role: principalRole(ctx),
		}
		s.render = s.renderUser
		// One audit line for the whole stream, when it ends.
		defer func() { audit(r, s.users) }()
		if err := s.run(ctx); err != nil && !errors.Is(err, errLimit) && ctx.Err() == nil {
			// The reply is a 200 already; the client reconnects and resumes.
			log.LogAttrs(ctx, slog.LevelWarn, "sse stream ended", slog.String("err", err.Error()))
		}
	})
}

// sseWriter writes one stream to its client.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	bw      *bufio.Writer
	codec   *changefeed.Codec
	stream  *changefeed.Stream
	keys    Opener
	opts    SSEOptions
	metrics *metrics
	render  func([]byte, *viswals.SealedUser) ([]byte, error) // renderUser, bound once

	role        auth.Role // what the stream's principal may see
	limit, sent int       // users and leaves, limited
	users       int       // users sent, audited
}

func (s *sseWriter) run(ctx context.Context) error {
	// The server's WriteTimeout would cut the first write after it
	// expires: a stream bounds each write instead (deadline). Its read
	// deadline is cleared too, in case a request body kept ReadTimeout's.
	s.rc.SetReadDeadline(time.Time{})
	s.deadline()
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
	s.bw.WriteString("retry: ")
	s.bw.WriteString(strconv.FormatInt(s.opts.Retry.Milliseconds(), 10))
	s.bw.WriteString("\n\n")
	if err := s.flush(); err != nil {
		return err
	}
	var heartbeat *time.Ticker // from the first wait: the snapshot is no idle time
	defer func() {
		if heartbeat != nil {
			heartbeat.Stop()
		}
	}()
	for {
		events, more, err := s.stream.Next(ctx)
		if err != nil {
			return err
		}
		if len(events) > 0 {
			s.deadline()
			for i := range events {
				if err := s.event(&events[i]); err != nil {
					return err
				}
			}
			if err := s.flush(); err != nil {
				return err
			}
		}
		if more == nil {
			continue
		}
		if heartbeat == nil {
			heartbeat = time.NewTicker(s.opts.Heartbeat)
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

// renderUser appends the user's JSON, email opened, to dst.
func (s *sseWriter) renderUser(dst []byte, u *viswals.SealedUser) ([]byte, error) {
	user, err := s.keys.Open(*u)
	if err != nil {
		return dst, err
	}
	user.Email = s.role.ShowEmail(user.Email)
	return appendUser(dst, &user), nil
}

// event writes one event; all but the snapshot's carry the cursor after
// them as their id. Users and leaves count towards the limit.
func (s *sseWriter) event(e *changefeed.Event) error {
	switch e.Kind {
	case changefeed.EventSnapshot:
		s.bw.WriteString("event: snapshot\ndata: {\"size\":")
		s.bw.Write(strconv.AppendInt(s.bw.AvailableBuffer(), e.Size, 10))
		_, err := s.bw.WriteString("}\n\n")
		return err
	case changefeed.EventLive:
		s.bw.WriteString("event: live\nid: ")
		s.bw.Write(s.stream.AppendID(s.bw.AvailableBuffer(), e, s.codec))
		_, err := s.bw.WriteString("\ndata: {}\n\n")
		return err
	case changefeed.EventLeave:
		s.bw.WriteString("event: leave\nid: ")
		s.bw.Write(s.stream.AppendID(s.bw.AvailableBuffer(), e, s.codec))
		s.bw.WriteString("\ndata: {\"id\":")
		s.bw.Write(strconv.AppendInt(s.bw.AvailableBuffer(), e.User.ID, 10))
		if _, err := s.bw.WriteString("}\n\n"); err != nil {
			return err
		}
	default:
		view := 0 // the renderings of the ring are shared by the streams of one view
		if !s.role.SeesEmails() {
			view = 1
		}
		data, err := s.stream.Render(e, view, s.render)
		if err != nil {
			return err
		}
		s.bw.WriteString("event: user\nid: ")
		s.bw.Write(s.stream.AppendID(s.bw.AvailableBuffer(), e, s.codec))
		s.bw.WriteString("\ndata: ")
		s.bw.Write(data)
		if _, err := s.bw.WriteString("\n\n"); err != nil {
			return err
		}
		s.users++
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

func (s *sseWriter) flush() error {
	if err := s.bw.Flush(); err != nil {
		return err
	}
	return s.rc.Flush()
}

// deadline gives the next writes WriteTimeout to complete.
func (s *sseWriter) deadline() {
	s.rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
}
