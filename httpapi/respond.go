package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/viswals/viswals"
)

// Shared header values: assigning a prebuilt slice instead of calling
// Header.Set saves an allocation on the hot path. Nothing appends to them.
var (
	jsonContentType = []string{"application/json"}
	noSniff         = []string{"nosniff"}
)

// bufPool holds response buffers for the small JSON replies.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 64<<10 {
		return // do not keep rare big buffers alive
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// errorStatus maps a domain error to an HTTP status and the message the
// client sees. It is the only place that does: every handler reports
// failures through writeError.
func errorStatus(err error) (int, string) {
	switch viswals.ErrorCode(err) {
	case viswals.EINVALID:
		return http.StatusBadRequest, viswals.ErrorMessage(err)
	case viswals.ENOTFOUND:
		return http.StatusNotFound, viswals.ErrorMessage(err)
	case viswals.EUNAUTHENTICATED:
		return http.StatusUnauthorized, viswals.ErrorMessage(err)
	case viswals.EFORBIDDEN:
		return http.StatusForbidden, viswals.ErrorMessage(err)
	case viswals.EUNAVAILABLE:
		return http.StatusServiceUnavailable, "service unavailable, try again later"
	case viswals.EINTEGRITY:
		return http.StatusInternalServerError, viswals.ErrorMessage(err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return http.StatusServiceUnavailable, "service unavailable, try again later"
	}
	return http.StatusInternalServerError, "internal error"
}

// writeError writes the error envelope. Server-side failures are logged
// with the real error; the client gets a generic message so internals
// never leak.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, msg := errorStatus(err)
	// A client that went away is not a server failure worth a log line.
	if status >= 500 && r.Context().Err() == nil {
		level := slog.LevelError
		if status == http.StatusServiceUnavailable {
			level = slog.LevelWarn // a dependency is down; it has its own alerts
		}
		log.LogAttrs(r.Context(), level, "request failed",
			slog.String("method", r.Method), slog.String("route", r.Pattern),
			slog.Int("status", status), slog.String("err", err.Error()))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="viswals"`)
	}
	writeErrorStatus(w, status, msg)
}

// writeErrorStatus writes {"status":"error","error":msg} with status.
func writeErrorStatus(w http.ResponseWriter, status int, msg string) {
	b := getBuf()
	defer putBuf(b)
	*b = append(*b, `{"status":"error","error":`...)
	*b = appendJSONString(*b, msg)
	*b = append(*b, "}\n"...)
	writeJSONBytes(w, status, *b)
}

// writeJSONBytes writes an already encoded JSON body in one Write, which
// lets net/http set Content-Length itself for small bodies.
func writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	w.Write(body) //nolint:errcheck // the client went away; nothing to do
}
