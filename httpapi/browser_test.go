package httpapi_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/internal/wait"
)

// TestBrowserLivePage drives the live page in headless Chromium: the
// snapshot fills the table, users written after the page opened appear,
// names are shown as text (never markup), and the filters re-open the
// stream. A screenshot is saved in the test's temp dir.
func TestBrowserLivePage(t *testing.T) {
	testenv.SkipShort(t, "drives headless Chromium")
	browser := testenv.Program(t, "Chromium", "apt-get install chromium", "chromium", "chromium-browser", "google-chrome")
	e := newPGEnv(t, "")
	e.put(t, user(1, "Ann", "Lee"), user(2, "Bob", "Stone"), user(3, "anna", "Lewis"))

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	// waitJS polls a JavaScript condition in the page.
	waitJS := func(what, cond string) {
		t.Helper()
		wait.For(t, 20*time.Second, what, func() (bool, string) {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return ok, fmt.Sprintf("state %q, count %q", text("#state"), text("#count"))
		})
	}
	rowIDs := `Array.from(document.querySelectorAll('#rows tr')).map(tr => tr.dataset.id).sort().join(',')`

	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS("connection live", `document.querySelector('#state').textContent === 'live'`)
	waitJS("snapshot shown", `document.querySelector('#count').textContent === '3'`)

	// Users written after the page opened, one with a name that is markup.
	evil := `<img src=x onerror="document.title='pwned'">`
	e.put(t, user(4, evil, "Zed"), user(5, "Carl", "New"))
	waitJS("live users shown", rowIDs+` === '1,2,3,4,5'`)
	cell := text(`#rows tr[data-id="4"] td:nth-child(2)`)
	imgs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#rows img').length`))
	if err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if cell != evil || imgs != 0 || title == "pwned" {
		t.Fatalf("a name was rendered as markup: cell %q, %d img, title %q", cell, imgs, title)
	}
	if email := text(`#rows tr[data-id="5"] td:nth-child(4)`); email != "u5@example.com" {
		t.Errorf("email cell %q, want the decrypted email", email)
	}

	// A filter re-opens the stream: only matching users, old and new.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#first_name"), "AN")); err != nil {
		t.Fatal(err)
	}
	waitJS("filtered snapshot", rowIDs+` === '1,3'`)
	e.put(t, user(6, "Annika", "Late"), user(7, "Dora", "Late"))
	waitJS("filtered live user", rowIDs+` === '1,3,6'`)
	if got := text("#count"); got != "3" {
		t.Errorf("count %q, want 3", got)
	}

	// The server drops the connection: the browser reconnects by itself
	// with Last-Event-ID and resumes without repeating anything.
	e.srv.CloseClientConnections()
	waitJS("reconnected", `document.querySelector('#state').textContent === 'live'`)
	e.put(t, user(8, "Anouk", "After"))
	waitJS("user after the reconnect", rowIDs+` === '1,3,6,8'`)
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#count').dataset.events`)); n != "4" {
		t.Errorf("%s events for 4 users: the resumed stream repeated some", n)
	}
	// Two streams ended so far (the unfiltered one, and the filtered one
	// the server cut); the third, the reconnection, is open.
	metrics := e.metricsText(t)
	if !strings.Contains(metrics, `viswals_http_request_duration_seconds_count{method="GET",route="GET /users/sse",status="200"} 2`) ||
		!strings.Contains(metrics, "viswals_sse_subscribers 1") {
		t.Errorf("the browser did not reconnect as expected:\n%s", metrics)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "live-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("HTTPAPI_SCREENSHOT"); keep != "" {
		os.WriteFile(keep, png, 0o644)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
}
