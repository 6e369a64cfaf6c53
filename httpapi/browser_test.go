package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/viswals/viswals/auth"
	"github.com/viswals/viswals/httpapi"
	"github.com/viswals/viswals/internal/fakeclock"
	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/internal/wait"
)

// browserKeys are the API keys the browser test signs in with.
type browserKeys struct{ pii, reader, admin string }

// withBrowserKeys turns authentication on with a pii, a reader and an admin key, and
// sessions of an hour on clock.
func withBrowserKeys(t *testing.T, keys *browserKeys, clock *fakeclock.Clock) func(*httpapi.Config) {
	t.Helper()
	pii, piiLine, err := auth.GenerateKey("support", auth.RolePII)
	if err != nil {
		t.Fatal(err)
	}
	reader, readerLine, err := auth.GenerateKey("dashboard", auth.RoleReader)
	if err != nil {
		t.Fatal(err)
	}
	admin, adminLine, err := auth.GenerateKey("ops", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	keys.pii, keys.reader, keys.admin = pii, reader, admin
	path := filepath.Join(t.TempDir(), "api-keys")
	if err := os.WriteFile(path, []byte(piiLine+"\n"+readerLine+"\n"+adminLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kf, err := auth.OpenKeyFile(path, auth.KeyFileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := auth.NewSessions([]byte("a session key of 32 bytes: 01234"), auth.SessionOptions{TTL: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return func(cfg *httpapi.Config) {
		cfg.AuthOff = false
		cfg.Auth = auth.NewAuthenticator(kf, nil)
		cfg.Sessions = sessions
	}
}

// TestBrowserLivePage drives the live page in headless Chromium: signing in
// through the form (a wrong key is refused), the snapshot fills the table,
// users written after the page opened appear, names are shown as text
// (never markup), the filters re-open the stream, the stream resumes after
// a dropped connection, an ended session brings the form back, a reader
// sees masked emails, and signing out clears the page. Then, with
// authentication off, the page says so and needs no sign-in. A screenshot
// is saved in the test's temp dir.
func TestBrowserLivePage(t *testing.T) {
	testenv.SkipShort(t, "drives headless Chromium")
	browser := testenv.Program(t, "Chromium", "apt-get install chromium", "chromium", "chromium-browser", "google-chrome")
	var keys browserKeys
	clock := fakeclock.New(time.Now())
	e := newPGEnv(t, "", withBrowserKeys(t, &keys, clock))
	e.put(t, user(1, "Ann", "Lee"), user(2, "Bob", "Stone"), user(3, "anna", "Lewis"))

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 10*time.Minute) // the whole test, every step below
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
		wait.For(t, browserWait, what, func() (bool, string) {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return ok, fmt.Sprintf("state %q, count %q", text("#state"), text("#count"))
		})
	}
	rowIDs := `Array.from(document.querySelectorAll('#rows tr')).map(tr => tr.dataset.id).sort().join(',')`
	signedOut := `!document.querySelector('#signin').hidden && document.querySelector('#live').hidden`
	signIn := func(key string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#token').value = ''`)); err != nil {
			t.Fatalf("clear the token field: %v", err)
		}
		if err := chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.CSS("#token"), key),
			chromedp.Click(chromedp.CSS("#signin-button")),
		); err != nil {
			t.Fatalf("sign in: %v", err)
		}
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS("the sign-in form", signedOut)
	signIn(keys.pii + "x")
	waitJS("a wrong key refused", `document.querySelector('#signin-error').textContent !== '' && `+signedOut)
	signIn(keys.pii)
	waitJS("signed in", `!document.querySelector('#live').hidden`)
	if who := text("#who"); who != "support · pii" {
		t.Errorf("who %q, want the key's name and role", who)
	}
	if c, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`)); strings.Contains(c, "viswals_session") {
		t.Error("the session cookie is readable by scripts")
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
	metrics := metricsWithKey(t, e.srv.URL, keys.admin)
	if !strings.Contains(metrics, `viswals_http_request_duration_seconds_count{method="GET",route="GET /users/sse",status="200"} 2`) ||
		!strings.Contains(metrics, "viswals_sse_subscribers 1") {
		t.Errorf("the browser did not reconnect as expected:\n%s", metrics)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	// The session ends while the stream is open: the next connection is
	// refused, and the page asks to sign in again.
	clock.Advance(time.Hour)
	e.srv.CloseClientConnections()
	waitJS("the form back once the session ended", signedOut+` && document.querySelector('#signin-error').textContent.includes('ended')`)
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#rows tr').length`)); n != 0 {
		t.Errorf("%d rows left on the page after the session ended", n)
	}

	// A reader sees emails masked; signing out brings the form back.
	signIn(keys.reader)
	waitJS("signed in as a reader", `!document.querySelector('#live').hidden && document.querySelector('#state').textContent === 'live'`)
	waitJS("the reader's snapshot", rowIDs+` === '1,3,6,8'`)
	if who, email := text("#who"), text(`#rows tr[data-id="1"] td:nth-child(4)`); who != "dashboard · reader" || email != "u***@example.com" {
		t.Errorf("reader: who %q, email %q; want dashboard · reader, u***@example.com", who, email)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#signout"))); err != nil {
		t.Fatal(err)
	}
	waitJS("signed out", signedOut+` && document.querySelectorAll('#rows tr').length === 0`)
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS("still signed out after a reload", signedOut)

	// Authentication off: no form, and the page says so.
	off := newPGEnv(t, "", func(cfg *httpapi.Config) { cfg.AuthOff = true })
	off.put(t, user(1, "Ann", "Lee"))
	if err := chromedp.Do(ctx, chromedp.Navigate(off.srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS("live without signing in", `!document.querySelector('#live').hidden && document.querySelector('#state').textContent === 'live' && `+rowIDs+` === '1'`)
	if who, hidden := text("#who"), `document.querySelector('#signout').hidden`; who != "authentication off" {
		t.Errorf("who %q with authentication off", who)
	} else if ok, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](hidden)); !ok {
		t.Error("a sign-out button with authentication off")
	}
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

// metricsWithKey reads /metrics as the admin whose key is key.
func metricsWithKey(t *testing.T, base, key string) string {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}
