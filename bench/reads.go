package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Wrk is the outcome of one wrk run.
type Wrk struct {
	RPS      float64
	P50, P99 time.Duration
	Requests int64
	Errors   int64 // non-2xx responses and socket errors (timeouts included)
	Non2xx   int64 // responses with a status other than 2xx or 3xx
}

// apiAvailable reports whether the consumer serves the users API: GET
// /users/1 answers with the JSON envelope (200 or 404), not the mux's
// plain-text 404 of an unknown route.
func apiAvailable(ctx context.Context, addr, apiKey string) (bool, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/users/1", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var env struct {
		Status string `json:"status"`
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &env) != nil || env.Status == "" {
		return false, fmt.Sprintf("GET /users/1: %d %q", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Sprintf("GET /users/1 of a loaded table: %d %s", resp.StatusCode, body)
	}
	return true, ""
}

// bareReads runs the yardstick: a bare net/http handler answering a
// constant user under the same wrk load.
func (h *harness) bareReads(ctx context.Context, cfg Config) (Wrk, error) {
	port, err := freePort()
	if err != nil {
		return Wrk{}, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := h.start(h.bin["barehttp"], []string{"-addr", addr}, nil, "barehttp")
	if err != nil {
		return Wrk{}, err
	}
	defer p.stop()
	if err := waitHTTP(ctx, "http://"+addr+"/users/1", 10*time.Second, p); err != nil {
		return Wrk{}, err
	}
	return h.wrk(ctx, cfg, addr, "/users/1", getByIDScript(1_000_000))
}

// getByIDScript asks for random ids in 1..n, each wrk thread with its own seed.
func getByIDScript(n int) string {
	return fmt.Sprintf(`local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end
function init(args)
  math.randomseed(os.time() * 100 + seed)
end
function request()
  return wrk.format("GET", "/users/" .. math.random(1, %d))
end
`, n)
}

// listScript asks for pages of 100 users whose first name starts with a
// random prefix, common and rare (names as cmd/gencsv writes them).
const listScript = `local prefixes = {"a", "an", "ann", "em", "emma", "li", "liam", "mo", "so", "sof%C3%ADa",
  "zo", "zo%C3%AB", "wei", "jo", "jos%C3%A9", "lu", "ch", "ma", "ol", "ing", "dm", "pr", "kw", "re", "j%C3%BC", "%C5%82u"}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end
function init(args)
  math.randomseed(os.time() * 100 + seed)
end
function request()
  return wrk.format("GET", "/users?limit=100&first_name=" .. prefixes[math.random(1, #prefixes)])
end
`

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reTotal    = regexp.MustCompile(`(\d+) requests in`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSockErr  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	rePercent  = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkVersion = "wrk"
)

// wrkTimeout is wrk's request timeout (its default, given explicitly).
const wrkTimeout = 2 * time.Second

// wrk runs wrk against http://addr+path with a Lua script.
func (h *harness) wrk(ctx context.Context, cfg Config, addr, path, script string) (Wrk, error) {
	f, err := os.CreateTemp(h.dir, "wrk-*.lua")
	if err != nil {
		return Wrk{}, err
	}
	f.WriteString(script)
	f.Close()
	secs := max(1, int(cfg.WrkDuration.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, wrkVersion, "-t"+strconv.Itoa(cfg.WrkThreads), "-c"+strconv.Itoa(cfg.WrkConns),
		"-d"+strconv.Itoa(secs)+"s", "--timeout", wrkTimeout.String(), "--latency",
		"-H", "Authorization: Bearer "+h.apiKey, "-s", f.Name(), "http://"+addr+path)
	out, err := cmd.CombinedOutput()
	os.WriteFile(filepath.Join(h.dir, "wrk-"+strings.NewReplacer("/", "_", "?", "_").Replace(path)+".out"), out, 0o644)
	if err != nil {
		return Wrk{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return parseWrk(string(out))
}

func parseWrk(out string) (Wrk, error) {
	var w Wrk
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return w, fmt.Errorf("cannot read wrk's output:\n%s", out)
	}
	w.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := reTotal.FindStringSubmatch(out); m != nil {
		w.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		w.Errors += n
		w.Non2xx = n
	}
	if m := reSockErr.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			w.Errors += n
		}
	}
	for _, m := range rePercent.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			w.P50 = d
		} else {
			w.P99 = d
		}
	}
	if w.P99 == 0 {
		if w.Requests == 0 || w.Errors == 0 {
			return w, fmt.Errorf("no latency distribution in wrk's output:\n%s", out)
		}
		// Every request timed out: wrk has no latencies, only that each
		// took longer than its timeout.
		w.P50, w.P99 = wrkTimeout, wrkTimeout
	}
	return w, nil
}
