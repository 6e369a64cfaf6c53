package httpapi

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/viswals/viswals"
)

// userReader gets one user the way GET /users/{id} needs: Redis first,
// Postgres on a miss, and the cache refilled from Postgres.
type userReader struct {
	store   Store
	cache   Cache    // nil: no cache
	batch   *batcher // non-nil when cache is a BatchCache
	keys    Opener
	log     *slog.Logger
	metrics *metrics
	// After the cache answered "unavailable", reads skip it until
	// skipCacheUntil (unix nanoseconds), cacheCooldown later, so that a
	// hung Redis costs one timeout rather than one per batch of requests
	// queued behind it. Then the next batch probes it again.
	skipCacheUntil atomic.Int64
}

const cacheCooldown = time.Second

func (ur *userReader) get(ctx context.Context, id int64) (viswals.User, error) {
	fill := false
	if ur.cache != nil && time.Now().UnixNano() >= ur.skipCacheUntil.Load() {
		var s viswals.SealedUser
		var err error
		if ur.batch != nil {
			s, err = ur.batch.get(ctx, id)
		} else {
			s, err = ur.cache.Get(ctx, id)
		}
		if ctx.Err() != nil {
			// The client went away (or timed out) while the cache was
			// asked: nothing to answer, nothing to fall back to.
			return viswals.User{}, ctx.Err()
		}
		if err == nil {
			u, err := ur.keys.Open(s)
			if err == nil {
				ur.metrics.cacheHit.Inc()
				return u, nil
			}
			// A value that decodes but does not decrypt is as corrupt as
			// one that does not decode: Postgres has the truth.
			ur.log.LogAttrs(ctx, slog.LevelWarn, "cached user does not open; reading postgres",
				slog.Int64("id", id), slog.String("err", err.Error()))
			fill = true
		} else {
			switch viswals.ErrorCode(err) {
			case viswals.ENOTFOUND:
				ur.metrics.cacheMiss.Inc()
				fill = true
			case viswals.EUNAVAILABLE:
				// Redis is down: serve from Postgres, do not wait on a
				// cache write that would fail too, and leave the cache
				// alone for a while.
				ur.metrics.cacheError.Inc()
				ur.skipCacheUntil.Store(time.Now().Add(cacheCooldown).UnixNano())
			default:
				ur.metrics.cacheError.Inc()
				ur.log.LogAttrs(ctx, slog.LevelWarn, "cached user unreadable; reading postgres",
					slog.Int64("id", id), slog.String("err", err.Error()))
				fill = true
			}
		}
	}
	s, err := ur.store.Get(ctx, id)
	if err != nil {
		return viswals.User{}, err
	}
	if fill {
		if err := ur.cache.Put(ctx, []viswals.SealedUser{s}); err != nil {
			ur.log.LogAttrs(ctx, slog.LevelWarn, "cache fill failed",
				slog.Int64("id", id), slog.String("err", err.Error()))
		}
	}
	return ur.keys.Open(s)
}

// handleGetUser serves GET /users/{id}. It is the hot path: no reflection,
// one pooled buffer, one Write.
func handleGetUser(ur *userReader, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := parseDecimal(r.PathValue("id"))
		if !ok || id < 1 {
			writeErrorStatus(w, http.StatusBadRequest, "id must be a positive integer")
			return
		}
		u, err := ur.get(r.Context(), id)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		b := getBuf()
		*b = append(*b, `{"status":"success","data":`...)
		*b = appendUser(*b, &u)
		*b = append(*b, "}\n"...)
		writeJSONBytes(w, http.StatusOK, *b)
		putBuf(b)
	})
}

// handleListUsers serves GET /users: one keyset page, encoded row by row as
// the store streams it. Rows go through a buffer in front of the
// connection, so until the first buffer-full is sent a store failure still
// becomes a clean error reply.
func handleListUsers(store Store, keys Opener, cursorKey []byte, log *slog.Logger) http.Handler {
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
		err = store.List(r.Context(), p.filter, p.afterID, p.limit+1, func(s viswals.SealedUser) error {
			if n == p.limit {
				more = true
				return nil
			}
			u, err := keys.Open(s)
			if err != nil {
				return err
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
			lastID = s.ID
			_, err = bw.Write(appendUser(bw.AvailableBuffer(), &u))
			return err
		})
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
			bw.Write(codec.appendCursor(bw.AvailableBuffer(), cursor{kind: kindList, afterID: lastID}))
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
