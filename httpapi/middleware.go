package httpapi

import (
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"
)

// observe wraps the router: one structured log line and one latency
// observation per request, labelled by the route pattern (never the raw
// path, which would explode the label set and could carry anything), and
// JSON replies for the router's own 404 and 405.
//
// Each request gets an id, sent back as X-Request-Id; guard reads it from
// there for the audit log, so the access log and the audit log name a
// request alike.
func observe(next http.Handler, log *slog.Logger, m *metrics, slow time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := w.Header()
		// Replies carry users' data: no cache, shared or private, keeps them.
		h["Cache-Control"] = noStore
		if r.TLS != nil {
			h["Strict-Transport-Security"] = hsts
		}
		id := newRequestID()
		h["X-Request-Id"] = []string{id}
		rec := &recorder{ResponseWriter: w, r: r}
		defer func() {
			p := recover()
			if p != nil && p != http.ErrAbortHandler {
				log.LogAttrs(r.Context(), slog.LevelError, "handler panic",
					slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
				if rec.status == 0 {
					writeErrorStatus(rec, http.StatusInternalServerError, "internal error")
				}
				rec.status = http.StatusInternalServerError
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK // nothing written: net/http sends 200
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			end := time.Now()
			d := end.Sub(start)
			m.requests.WithLabelValues(route, methodLabel(r.Method), statusLabel(status)).Observe(d.Seconds())
			logRequest(r, log.Handler(), end, id, route, status, d, accessLevel(rec, status, d, slow))
			if p == http.ErrAbortHandler {
				panic(p) // let net/http drop the connection
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// recorder remembers the status, and turns the router's plain-text 404
// and 405 (a request no pattern matched) into the JSON error envelope.
type recorder struct {
	http.ResponseWriter
	r       *http.Request
	status  int
	discard bool // the router's own body is being replaced
}

func (rec *recorder) WriteHeader(code int) {
	if code < 200 || rec.status != 0 {
		rec.ResponseWriter.WriteHeader(code)
		return
	}
	rec.status = code
	// The router sets r.Pattern before calling a matched handler, so an
	// empty pattern here is the router answering for itself.
	if rec.r.Pattern == "" && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		msg := "no such route"
		if code == http.StatusMethodNotAllowed {
			msg = "method " + rec.r.Method + " not allowed"
		}
		h := rec.Header()
		h.Del("Content-Length")
		writeErrorStatus(rec.ResponseWriter, code, msg)
		rec.discard = true
		return
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	if rec.discard {
		return len(p), nil
	}
	return rec.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach Flush and the deadlines.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

var statusLabels = func() (s [600]string) {
	for i := 100; i < len(s); i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusLabel(code int) string {
	if code >= 100 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}

// accessLevel is the level of a request's log line: debug, so that a
// polling page does not flood the log, but info for a server error and for
// a request slower than slow (0: none is). An event stream is long by
// design and never counts as slow.
func accessLevel(rec *recorder, status int, d, slow time.Duration) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelInfo
	case slow > 0 && d >= slow && rec.Header().Get("Content-Type") != "text/event-stream":
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// logRequest writes the request's log line. It builds the record itself
// rather than calling Logger.LogAttrs, which would capture the caller's
// program counter (a stack walk, a noticeable share of the cost of a cached
// GET /users/{id}) for a source that is always this function. Never the
// path or query: they may carry names.
func logRequest(r *http.Request, h slog.Handler, now time.Time, id, route string, status int, d time.Duration, level slog.Level) {
	ctx := r.Context()
	if !h.Enabled(ctx, level) {
		return
	}
	rec := slog.NewRecord(now, level, "http request", 0)
	rec.AddAttrs(slog.String("request_id", id), slog.String("method", r.Method), slog.String("route", route),
		slog.Int("status", status), slog.String("duration", d.String()))
	h.Handle(ctx, rec) //nolint:errcheck // nowhere to report a failing log
}
