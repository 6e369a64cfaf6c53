package httpapi

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/viswals/viswals"
)

// memLoads is a LoadReader over a slice.
type memLoads []viswals.LoadRecord

func (m memLoads) GetLoad(_ context.Context, id int64) (viswals.LoadRecord, error) {
	for _, r := range m {
		if r.ID == id {
			return r, nil
		}
	}
	return viswals.LoadRecord{}, viswals.Errorf(viswals.ENOTFOUND, "load %d not found", id)
}

func (m memLoads) ListLoads(_ context.Context, before int64, limit int) ([]viswals.LoadRecord, error) {
	out := []viswals.LoadRecord{}
	for _, r := range m {
		if before == 0 || r.ID < before {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out[:min(limit, len(out))], nil
}

func TestLoads(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	loads := memLoads{
		{ID: 1764451200000000001, Summary: &viswals.LoadSummary{Read: 3, Published: 2, Rejected: 1},
			Tally: viswals.Tally{Received: 2, Inserted: 1, Updated: 1}, FirstCommit: at, LastCommit: at},
		{ID: 1764451200000000002, Tally: viswals.Tally{Received: 5, Inserted: 5}, FirstCommit: at, LastCommit: at},
		{ID: 1764451200000000003},
	}
	e := newEnv(t, func(s *envSettings) { s.deps.Loads = loads })

	status, body := e.get(t, "/loads?limit=2")
	if status != 200 {
		t.Fatalf("GET /loads: %d %v", status, body)
	}
	data := body["data"].([]any)
	if len(data) != 2 || data[0].(map[string]any)["id"] != "1764451200000000003" || body["next_cursor"] != "1764451200000000002" {
		t.Fatalf("first page %v, want the two newest and a cursor", body)
	}
	if data[1].(map[string]any)["state"] != viswals.LoadIncomplete || data[1].(map[string]any)["published"] != nil {
		t.Errorf("a load without its summary: %v, want incomplete, published null", data[1])
	}
	status, body = e.get(t, "/loads?limit=2&cursor=1764451200000000002")
	if status != 200 || len(body["data"].([]any)) != 1 || body["next_cursor"] != nil {
		t.Fatalf("last page: %d %v", status, body)
	}
	one := body["data"].([]any)[0].(map[string]any)
	for k, want := range map[string]any{"id": "1764451200000000001", "state": viswals.LoadComplete, "read": 3.0,
		"published": 2.0, "rejected": 1.0, "received": 2.0, "inserted": 1.0, "updated": 1.0, "unchanged": 0.0,
		"dead_lettered": 0.0, "first_commit_at": "2026-01-02T03:04:05Z", "started_at": "2025-11-29T21:20:00.000000001Z"} {
		if one[k] != want {
			t.Errorf("%s = %v, want %v", k, one[k], want)
		}
	}

	status, body = e.get(t, "/loads/1764451200000000001")
	if status != 200 || body["data"].(map[string]any)["state"] != viswals.LoadComplete {
		t.Errorf("GET /loads/{id}: %d %v", status, body)
	}
	for path, want := range map[string]int{
		"/loads/42":                   404,
		"/loads/abc":                  400,
		"/loads/0":                    400,
		"/loads/-1":                   400,
		"/loads/99999999999999999999": 400,
		"/loads/1%27%20OR%201=1":      400,
		"/loads?limit=0":              400,
		"/loads?limit=101":            400,
		"/loads?limit=x":              400,
		"/loads?cursor=abc":           400,
		"/loads?cursor=1&cursor=2":    400,
	} {
		status, body := e.get(t, path)
		if status != want || body["status"] != "error" {
			t.Errorf("GET %s: %d %v, want %d", path, status, body, want)
		}
	}
}
