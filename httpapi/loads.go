package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/viswals/viswals"
)

// LoadReader is where GET /loads reads the loads' records from.
type LoadReader interface {
	// GetLoad returns one load, with an ENOTFOUND error when there is none.
	GetLoad(ctx context.Context, id int64) (viswals.LoadRecord, error)
	// ListLoads returns up to limit loads with an id below before (0: any),
	// newest first.
	ListLoads(ctx context.Context, before int64, limit int) ([]viswals.LoadRecord, error)
}

// loadJSON is a load as the API shows it. The id is a string: it is a
// time in nanoseconds, beyond the integers JavaScript holds exactly.
type loadJSON struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	StartedAt time.Time `json:"started_at"`
	Read      *int64    `json:"read"`
	Published *int64    `json:"published"`
	Rejected  *int64    `json:"rejected"`
	viswals.Tally
	FirstCommitAt *time.Time `json:"first_commit_at"`
	LastCommitAt  *time.Time `json:"last_commit_at"`
}

func toLoadJSON(r viswals.LoadRecord) loadJSON {
	j := loadJSON{ID: strconv.FormatInt(r.ID, 10), State: r.State(), StartedAt: r.Started(), Tally: r.Tally}
	if s := r.Summary; s != nil {
		j.Read, j.Published, j.Rejected = &s.Read, &s.Published, &s.Rejected
	}
	if !r.FirstCommit.IsZero() {
		j.FirstCommitAt, j.LastCommitAt = &r.FirstCommit, &r.LastCommit
	}
	return j
}

const (
	defaultLoadsLimit = 20
	maxLoadsLimit     = 100
)

// handleGetLoad serves GET /loads/{id}.
func handleGetLoad(loads LoadReader, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := viswals.ParseLoadID(r.PathValue("id"))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		rec, err := loads.GetLoad(r.Context(), id)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		writeJSONValue(w, r, log, map[string]any{"status": "success", "data": toLoadJSON(rec)})
	})
}

// handleListLoads serves GET /loads: newest first, limit per page, and
// next_cursor (the last id of the page) to read on.
func handleListLoads(loads LoadReader, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := parseQuery(r.URL.RawQuery)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		limit, err := parseLimit(q, defaultLoadsLimit, maxLoadsLimit)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		var before int64
		if c, ok, err := single(q, "cursor"); err != nil {
			writeError(w, r, log, err)
			return
		} else if ok {
			if before, err = viswals.ParseLoadID(c); err != nil {
				writeError(w, r, log, viswals.Errorf(viswals.EINVALID, "invalid cursor: want the next_cursor of the previous page"))
				return
			}
		}
		recs, err := loads.ListLoads(r.Context(), before, limit+1)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		var next *string
		if len(recs) > limit {
			recs = recs[:limit]
			c := strconv.FormatInt(recs[limit-1].ID, 10)
			next = &c
		}
		data := make([]loadJSON, len(recs))
		for i, rec := range recs {
			data[i] = toLoadJSON(rec)
		}
		writeJSONValue(w, r, log, map[string]any{"status": "success", "data": data, "next_cursor": next})
	})
}

// writeJSONValue writes v as a 200 JSON reply.
func writeJSONValue(w http.ResponseWriter, r *http.Request, log *slog.Logger, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, r, log, err)
		return
	}
	writeJSONBytes(w, http.StatusOK, append(b, '\n'))
}

// noLoads is the LoadReader of an API given none: it knows no loads.
type noLoads struct{}

func (noLoads) GetLoad(_ context.Context, id int64) (viswals.LoadRecord, error) {
	return viswals.LoadRecord{}, viswals.Errorf(viswals.ENOTFOUND, "load %d not found", id)
}

func (noLoads) ListLoads(context.Context, int64, int) ([]viswals.LoadRecord, error) { return nil, nil }
