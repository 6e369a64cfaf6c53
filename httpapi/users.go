package httpapi

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/changefeed"
)

// handleGetUser serves GET /users/{id}. It is the hot path: no reflection,
// one pooled buffer, one Write.
func handleGetUser(users UserReader, log *slog.Logger, audit func(*http.Request, int)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := parseDecimal(r.PathValue("id"))
		if !ok || id < 1 {
			writeErrorStatus(w, http.StatusBadRequest, "id must be a positive integer")
			return
		}
		u, err := users.Get(r.Context(), id)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		u.Email = showEmail(r.Context(), u.Email)
		b := getBuf()
		*b = append(*b, `{"status":"success","data":`...)
		*b = appendUser(*b, &u)
		*b = append(*b, "}\n"...)
		writeJSONBytes(w, http.StatusOK, *b)
		putBuf(b)
		audit(r, 1)
	})
}

// handleListUsers serves GET /users: one keyset page, encoded row by row as
// the store streams it. Rows go through a buffer in front of the
// connection, so until the first buffer-full is sent a store failure still
// becomes a clean error reply.
func handleListUsers(users UserReader, cursorKey []byte, log *slog.Logger, audit func(*http.Request, int)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, codec, err := parseListParams(r.URL.RawQuery, cursorKey)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		sw := &sentWriter{w: w}
		bw := bufio.NewWriterSize(sw, 32<<10)
		n := 0
		var lastID int64
		more := false
		// One row more than the page tells whether there is a next page.
		err = users.List(r.Context(), p.filter, p.afterID, p.limit+1, func(u viswals.User) error {
			if n == p.limit {
				more = true
				return nil
			}
			if n == 0 {
				h := w.Header()
				h["Content-Type"] = jsonContentType
				h["X-Content-Type-Options"] = noSniff
				bw.WriteString(`{"status":"success","data":[`)
			} else {
				bw.WriteByte(',')
			}
			n++
			lastID = u.ID
			u.Email = showEmail(r.Context(), u.Email)
			_, err := bw.Write(appendUser(bw.AvailableBuffer(), &u))
			return err
		})
		audit(r, n)
		if err != nil {
			if !sw.sent {
				writeError(w, r, log, err)
				return
			}
			// Part of a 200 is on the wire: abort the connection so the
			// client sees a broken reply, not a short page.
			log.LogAttrs(r.Context(), slog.LevelError, "list failed mid-reply", slog.String("err", err.Error()))
			panic(http.ErrAbortHandler)
		}
		if n == 0 {
			writeJSONBytes(w, http.StatusOK, []byte(`{"status":"success","data":[],"next_cursor":null}`+"\n"))
			return
		}
		bw.WriteString(`],"next_cursor":`)
		if more {
			bw.WriteByte('"')
			bw.Write(codec.Append(bw.AvailableBuffer(), changefeed.Cursor{Kind: changefeed.KindList, AfterID: lastID}))
			bw.WriteByte('"')
		} else {
			bw.WriteString("null")
		}
		bw.WriteString("}\n")
		bw.Flush()
	})
}

// sentWriter records whether anything reached the client.
type sentWriter struct {
	w    io.Writer
	sent bool
}

func (s *sentWriter) Write(p []byte) (int, error) {
	s.sent = true
	return s.w.Write(p)
}
