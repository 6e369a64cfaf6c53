package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/httpapi"
	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/internal/wait"
)

// browserPage is a headless Chromium tab on the page of one API.
type browserPage struct {
	t   testing.TB
	ctx context.Context
}

func newBrowserPage(t testing.TB, width, height int) *browserPage {
	t.Helper()
	browser := testenv.Program(t, "Chromium", "apt-get install chromium", "chromium", "chromium-browser", "google-chrome")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(width, height))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	return &browserPage{t: t, ctx: ctx}
}

func (p *browserPage) navigate(url string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.Navigate(url)); err != nil {
		p.t.Fatalf("open %s: %v", url, err)
	}
}

// js evaluates expr in the page.
func js[T any](p *browserPage, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS polls a condition in the page.
func (p *browserPage) waitJS(what, cond string, within time.Duration) {
	p.t.Helper()
	wait.For(p.t, within, what, func() (bool, string) {
		ok := js[bool](p, cond)
		return ok, js[string](p, `'state ' + document.querySelector('#state').textContent + ', count ' + document.querySelector('#count').textContent + ', rows ' + `+rowIDsJS)
	})
}

// browserWait bounds waiting for the page to reach a state: generous,
// because on a starved machine Chromium, the server and Postgres share
// the cores; a state never reached still fails.
const browserWait = 2 * time.Minute

// rowIDsJS lists the ids of the rows drawn, in their order on screen.
const rowIDsJS = `Array.from(document.querySelectorAll('#rows tr')).map(tr => tr.dataset.id).join(',')`

// TestBrowserPageReading drives the page's reading features in headless
// Chromium: filters and sort restored from the URL and kept in it, the
// snapshot then live state, sort by id or by last change, leave events
// removing rows, times in the browser's locale, the loads panel, and the
// light and dark themes (the system's choice, then the toggle).
func TestBrowserPageReading(t *testing.T) {
	testenv.SkipShort(t, "drives headless Chromium")
	e := newPGEnv(t, "", func(cfg *httpapi.Config) { cfg.AuthOff = true })
	p := newBrowserPage(t, 1280, 900) // after the server: closed before it
	e.put(t, user(1, "Ann", "Lee"), user(2, "Bob", "Stone"), user(3, "anna", "Lewis"), user(4, "Andy", "Moe"))

	// Filters and sort come from the URL.
	p.navigate(e.srv.URL + "/?first_name=an&sort=change")
	p.waitJS("live with the filtered snapshot", `document.querySelector('#state').textContent === 'live' && document.querySelector('#count').textContent === '3'`, browserWait)
	if f, s := js[string](p, `document.querySelector('#first_name').value`), js[string](p, `document.querySelector('#sort').value`); f != "an" || s != "change" {
		t.Fatalf("filter %q and sort %q not restored from the URL", f, s)
	}
	if hidden := js[bool](p, `document.querySelector('#catchup').hidden`); !hidden {
		t.Error("the catch-up bar is still shown once live")
	}

	// Last change first: a live change goes on top; by id, in id order.
	e.put(t, user(1, "Anne", "Lee"))
	p.waitJS("the changed user on top", rowIDsJS+` === '1,4,3'`, browserWait)
	if err := chromedp.Do(p.ctx, chromedp.SetValue(chromedp.CSS("#sort"), "id")); err != nil {
		t.Fatal(err)
	}
	js[bool](p, `document.querySelector('#sort').dispatchEvent(new Event('change')), true`)
	p.waitJS("sorted by id", rowIDsJS+` === '1,3,4'`, browserWait)
	if s := js[string](p, `location.search`); s != "?first_name=an" {
		t.Errorf("URL query %q, want the filter only (id is the default sort)", s)
	}

	// Renamed out of the filter: its row goes; renamed in: it comes.
	e.put(t, user(3, "Carla", "Lewis"))
	p.waitJS("the leave removes the row", rowIDsJS+` === '1,4'`, browserWait)
	e.put(t, user(2, "Anton", "Stone"))
	p.waitJS("the user renamed in appears", rowIDsJS+` === '1,2,4'`, browserWait)

	// Times in the browser's own format, computed there from the JSON.
	created := js[string](p, `document.querySelector('#rows tr[data-id="4"] td:nth-child(5)').textContent`)
	want := js[string](p, fmt.Sprintf(`new Date(%q).toLocaleString()`, time.UnixMilli(1600000000000+4).UTC().Format(time.RFC3339Nano)))
	if created != want || strings.Contains(created, "T") {
		t.Errorf("created shown as %q, want the local %q", created, want)
	}

	// Typing a filter keeps it in the URL.
	if err := chromedp.Do(p.ctx, chromedp.SendKeys(chromedp.CSS("#last_name"), "s")); err != nil {
		t.Fatal(err)
	}
	p.waitJS("filtered on both names", rowIDsJS+` === '2'`, browserWait)
	if s := js[string](p, `location.search`); s != "?first_name=an&last_name=s" {
		t.Errorf("URL query %q after typing a filter", s)
	}

	// The loads panel reads GET /loads: a list, or a note saying why not.
	p.waitJS("the loads panel filled", `document.querySelector('#loads-note').textContent !== '' || document.querySelectorAll('#loads li').length > 0`, browserWait)

	// Themes: the system's choice, then the reader's.
	bg := `getComputedStyle(document.documentElement).backgroundColor`
	if _, err := chromedp.Call(p.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	dark := js[string](p, bg)
	if _, err := chromedp.Call(p.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}}); err != nil {
		t.Fatal(err)
	}
	light := js[string](p, bg)
	if dark == light {
		t.Fatalf("the same background %s in dark and light", dark)
	}
	if err := chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS("#theme"))); err != nil {
		t.Fatal(err)
	}
	if got := js[string](p, bg); got != dark {
		t.Errorf("after the toggle the background is %s, want the dark %s", got, dark)
	}
	p.navigate(e.srv.URL + "/")
	p.waitJS("live again", `document.querySelector('#state').textContent === 'live'`, browserWait)
	if got := js[string](p, bg); got != dark {
		t.Errorf("the chosen theme was not kept across a reload: %s", got)
	}
}

// TestBrowserPageVirtual checks the page on a snapshot big enough to
// matter: a catch-up bar sized by the snapshot while it comes, every user
// counted, only the rows in view drawn, and a scroll to the bottom that
// shows the last id. BenchmarkBrowserPage200k times the same on 200,000.
func TestBrowserPageVirtual(t *testing.T) {
	testenv.SkipShort(t, "drives headless Chromium")
	server, page, rows := pageAt(t, 20_000)
	t.Logf("20,000 users: page %v, server alone %v; %d rows in the DOM", page, server, rows)
}

// BenchmarkBrowserPage200k measures the page on 200,000 users, from
// opening it (in a browser already running) until every user is counted, the stream is live and the
// table scrolled to the bottom shows the last id, with the server's side
// alone (the whole snapshot read over HTTP) as the yardstick:
//
//	go test -run '^$' -bench BrowserPage200k -benchtime 1x ./httpapi
func BenchmarkBrowserPage200k(b *testing.B) {
	testenv.SkipShort(b, "drives headless Chromium")
	for b.Loop() {
		server, page, _ := pageAt(b, 200_000)
		b.ReportMetric(page.Seconds(), "page-s")
		b.ReportMetric(server.Seconds(), "server-s")
	}
}

// pageAt loads n users, reads their snapshot over HTTP (server), then
// opens the page and waits for all of it (page); it returns both times
// and the number of rows in the DOM.
func pageAt(t testing.TB, n int) (server, page time.Duration, rows int) {
	e := newPGEnv(t, "", func(cfg *httpapi.Config) { cfg.AuthOff = true })
	p := newBrowserPage(t, 1280, 900) // after the server: closed before it
	users := make([]viswals.User, 0, n)
	for i := range int64(n) {
		users = append(users, user(i+1, fmt.Sprintf("First%d", i%977), fmt.Sprintf("Last%d", i%1009)))
	}
	e.put(t, users...)
	// Chromium starts on the first action: start it before the clock, as
	// a person's browser is running before they open the page.
	p.navigate("about:blank")

	t0 := time.Now()
	if got := readSnapshot(t, e.srv.URL+"/users/sse"); got != n {
		t.Fatalf("the server's snapshot had %d users, want %d", got, n)
	}
	server = time.Since(t0)

	t0 = time.Now()
	p.navigate(e.srv.URL + "/")
	p.waitJS("the catch-up bar during the snapshot", fmt.Sprintf(`!document.querySelector('#catchup').hidden && document.querySelector('#catchup-bar').max === %d || document.querySelector('#count').dataset.n === '%d'`, n, n), browserWait)
	p.waitJS("every user counted and live", fmt.Sprintf(`document.querySelector('#count').dataset.n === '%d' && document.querySelector('#state').textContent === 'live'`, n), 5*time.Minute)
	js[bool](p, `(s => { s.scrollTop = s.scrollHeight; return true })(document.querySelector('#scroller'))`)
	p.waitJS("the last id at the bottom", rowIDsJS+fmt.Sprintf(`.endsWith(',%d')`, n), browserWait)
	page = time.Since(t0)
	rows = js[int](p, `document.querySelectorAll('#rows tr').length`)
	if rows > 100 {
		t.Errorf("%d rows in the DOM for %d users: the table is not virtual", rows, n)
	}
	if hidden := js[bool](p, `document.querySelector('#catchup').hidden`); !hidden {
		t.Error("the catch-up bar is still shown once live")
	}
	return server, page, rows
}

// readSnapshot reads a stream until its live event and returns how many
// users came before it, checking that the announced size matches.
func readSnapshot(t testing.TB, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	users, size := 0, -1
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "event: user":
			users++
		case strings.HasPrefix(line, `data: {"size":`):
			fmt.Sscanf(line, `data: {"size":%d}`, &size)
		case line == "event: live":
			if size != users {
				t.Errorf("announced %d, sent %d", size, users)
			}
			return users
		}
	}
	t.Fatalf("the stream ended before live: %v", sc.Err())
	return 0
}

// TestBrowserPageStreamReader feeds the page's stream reader a stream
// written one byte per flush, so that events, lines and CR LF pairs
// arrive split across reads: comments, a retry, CR LF and CR line ends, a
// user whose data spans two lines, one whose JSON does not start with its
// id, a leave, and an event cut off by a dropped connection, which must
// be discarded. The page must then resume with the last applied id in
// Last-Event-ID, after a refused attempt (a 503), and apply what follows;
// and once the server is gone, say it is offline.
func TestBrowserPageStreamReader(t *testing.T) {
	testenv.SkipShort(t, "drives headless Chromium")
	e := newPGEnv(t, "", func(cfg *httpapi.Config) { cfg.AuthOff = true })
	streams := []string{
		"retry: 100\n\n: a comment\n\nevent: snapshot\r\ndata: {\"size\":3}\r\n\r\n" +
			"event: user\r\nid: c1\r\ndata: {\"id\":1,\"first_name\":\"Ann\",\"last_name\":\"Lee\",\"email_address\":\"a@example.com\",\"created_at\":\"2026-01-02T03:04:05Z\",\"deleted_at\":null,\"merged_at\":null,\"parent_user_id\":null}\r\n\r\n" +
			"event: user\nid: c2\ndata: {\"id\":2,\"first_name\":\"Bob\",\ndata: \"last_name\":\"Stone\",\"parent_user_id\":1}\n\n" +
			"event: user\rid: c3\rdata: {\"first_name\":\"Cy\",\"id\":3,\"last_name\":\"Moe\"}\r\r" +
			": ping\n\nevent: live\nid: c4\ndata: {}\n\nevent: leave\nid: c5\ndata: {\"id\":2}\n\n" +
			"event: user\nid: c6\ndata: {\"id\":9,\"first_name\":\"Cut\"}\n", // no blank line: never complete
		"", // refused
		"event: live\nid: c7\ndata: {}\n\nevent: user\nid: c8\ndata: {\"id\":4,\"first_name\":\"Dee\",\"last_name\":\"Fox\"}\n\n",
	}
	var (
		mu      sync.Mutex
		resumes []string // the Last-Event-ID and the query of each request
	)
	mux := http.NewServeMux()
	mux.Handle("/", e.api)
	mux.HandleFunc("GET /users/sse", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := len(resumes)
		resumes = append(resumes, r.Header.Get("Last-Event-ID")+"?"+r.URL.RawQuery)
		mu.Unlock()
		if n >= len(streams) {
			http.Error(w, "no more streams", http.StatusGone)
			return
		}
		if streams[n] == "" {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range len(streams[n]) {
			w.Write([]byte{streams[n][i]})
			if err := rc.Flush(); err != nil {
				return
			}
		}
		if n == len(streams)-1 {
			<-r.Context().Done() // the last stream stays open
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p := newBrowserPage(t, 1280, 900) // after the server: closed before it

	p.navigate(srv.URL + "/?sort=change")
	p.waitJS("the resumed stream's user", rowIDsJS+` === '4,3,1'`, browserWait)
	if n := js[string](p, `document.querySelector('#count').dataset.events`); n != "4" {
		t.Errorf("%s user events applied, want 4 (the cut one discarded)", n)
	}
	if s := js[string](p, `document.querySelector('#state').textContent`); s != "live" {
		t.Errorf("state %q, want live", s)
	}
	cells := js[string](p, `Array.from(document.querySelectorAll('#rows tr[data-id="1"] td')).map(td => td.textContent).join('|')`)
	if !strings.HasPrefix(cells, "1|Ann|Lee|a@example.com|") || strings.Contains(cells, "2026-01-02T") {
		t.Errorf("user 1 shown as %q", cells)
	}
	if cells := js[string](p, `document.querySelector('#rows tr[data-id="3"]').textContent`); !strings.Contains(cells, "CyMoe") {
		t.Errorf("user 3 (id not first in its JSON) shown as %q", cells)
	}
	mu.Lock()
	if want := []string{"?", "c5?", "c5?"}; fmt.Sprint(resumes) != fmt.Sprint(want) {
		t.Errorf("requests resumed from %q, want %q: the last applied event, in Last-Event-ID", resumes, want)
	}
	mu.Unlock()

	// The server gone: the page says it is offline, and keeps its rows.
	srv.CloseClientConnections()
	srv.Close()
	p.waitJS("offline", `document.querySelector('#state').textContent === 'offline'`, browserWait)
	if ids := js[string](p, rowIDsJS); ids != "4,3,1" {
		t.Errorf("rows %s once offline, want 4,3,1", ids)
	}
}
