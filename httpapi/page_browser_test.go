package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
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
	p.waitJS("live with the filtered snapshot", `document.querySelector('#state').textContent === 'live' && document.querySelector('#count').textContent === '3'`, 20*time.Second)
	if f, s := js[string](p, `document.querySelector('#first_name').value`), js[string](p, `document.querySelector('#sort').value`); f != "an" || s != "change" {
		t.Fatalf("filter %q and sort %q not restored from the URL", f, s)
	}
	if hidden := js[bool](p, `document.querySelector('#catchup').hidden`); !hidden {
		t.Error("the catch-up bar is still shown once live")
	}

	// Last change first: a live change goes on top; by id, in id order.
	e.put(t, user(1, "Anne", "Lee"))
	p.waitJS("the changed user on top", rowIDsJS+` === '1,4,3'`, 10*time.Second)
	if err := chromedp.Do(p.ctx, chromedp.SetValue(chromedp.CSS("#sort"), "id")); err != nil {
		t.Fatal(err)
	}
	js[bool](p, `document.querySelector('#sort').dispatchEvent(new Event('change')), true`)
	p.waitJS("sorted by id", rowIDsJS+` === '1,3,4'`, 10*time.Second)
	if s := js[string](p, `location.search`); s != "?first_name=an" {
		t.Errorf("URL query %q, want the filter only (id is the default sort)", s)
	}

	// Renamed out of the filter: its row goes; renamed in: it comes.
	e.put(t, user(3, "Carla", "Lewis"))
	p.waitJS("the leave removes the row", rowIDsJS+` === '1,4'`, 10*time.Second)
	e.put(t, user(2, "Anton", "Stone"))
	p.waitJS("the user renamed in appears", rowIDsJS+` === '1,2,4'`, 10*time.Second)

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
	p.waitJS("filtered on both names", rowIDsJS+` === '2'`, 10*time.Second)
	if s := js[string](p, `location.search`); s != "?first_name=an&last_name=s" {
		t.Errorf("URL query %q after typing a filter", s)
	}

	// The loads panel reads GET /loads: a list, or a note saying why not.
	p.waitJS("the loads panel filled", `document.querySelector('#loads-note').textContent !== '' || document.querySelectorAll('#loads li').length > 0`, 10*time.Second)

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
	p.waitJS("live again", `document.querySelector('#state').textContent === 'live'`, 20*time.Second)
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
// opening it until every user is counted, the stream is live and the
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

	t0 := time.Now()
	if got := readSnapshot(t, e.srv.URL+"/users/sse"); got != n {
		t.Fatalf("the server's snapshot had %d users, want %d", got, n)
	}
	server = time.Since(t0)

	t0 = time.Now()
	p.navigate(e.srv.URL + "/")
	p.waitJS("the catch-up bar during the snapshot", fmt.Sprintf(`!document.querySelector('#catchup').hidden && document.querySelector('#catchup-bar').max === %d || document.querySelector('#count').dataset.n === '%d'`, n, n), time.Minute)
	p.waitJS("every user counted and live", fmt.Sprintf(`document.querySelector('#count').dataset.n === '%d' && document.querySelector('#state').textContent === 'live'`, n), 5*time.Minute)
	js[bool](p, `(s => { s.scrollTop = s.scrollHeight; return true })(document.querySelector('#scroller'))`)
	p.waitJS("the last id at the bottom", rowIDsJS+fmt.Sprintf(`.endsWith(',%d')`, n), time.Minute)
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
