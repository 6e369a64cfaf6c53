package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const wrkOutput = `Running 3s test @ http://127.0.0.1:8080/users/1
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.07ms    1.63ms  40.12ms   93.53%
    Req/Sec    37.53k     4.65k   46.49k    75.00%
  Latency Distribution
     50%  549.00us
     75%    1.03ms
     90%    2.21ms
     99%    8.31ms
  224068 requests in 3.00s, 71.13MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  74645.40
Transfer/sec:     23.70MB
`

func TestParseWrk(t *testing.T) {
	w, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := Wrk{RPS: 74645.40, P50: 549 * time.Microsecond, P99: 8310 * time.Microsecond, Requests: 224068, Errors: 3, Non2xx: 3}
	if w != want {
		t.Fatalf("got %+v, want %+v", w, want)
	}
	timedOut := "  78 requests in 10.09s, 1.53MB read\n  Socket errors: connect 0, read 0, write 0, timeout 78\nRequests/sec:      7.73\n"
	if w, err := parseWrk(timedOut); err != nil || w.P99 != wrkTimeout || w.Errors != 78 {
		t.Fatalf("all timed out: got %+v, %v", w, err)
	}
	if _, err := parseWrk("unable to connect"); err == nil {
		t.Fatal("no error for output without figures")
	}
}

func TestUpdateSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.md")
	os.WriteFile(path, []byte("# Title\n\ntext\n"), 0o644)
	if err := UpdateSection(path, "results", "one"); err != nil {
		t.Fatal(err)
	}
	if err := UpdateSection(path, "results", "two"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if want := "# Title\n\ntext\n\n<!-- bench:results -->\ntwo\n<!-- /bench:results -->\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestWritePNG(t *testing.T) {
	var b bytes.Buffer
	p := Panel{Title: "T", XLabel: "x", YLabel: "y", X: []float64{100, 1000, 5000}, Y: []float64{1e4, 3e4, 2e4}, LogX: true, Limit: 25000}
	if err := WritePNG(&b, []Panel{p, {Title: "EMPTY"}}, 300, 200); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b.Bytes(), []byte("\x89PNG")) {
		t.Fatal("not a PNG")
	}
}
