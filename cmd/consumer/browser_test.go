package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/internal/wait"
)

// TestBrowserShowsUsersLoadedByTheProducer opens the live page of a running
// consumer in headless Chromium, signs in through its form with a key made
// by `consumer apikey create`, loads users through the real producer and
// waits for them to appear in the table. (httpapi's browser test covers
// filters, markup in names, reconnection, ended sessions and signing out.)
func TestBrowserShowsUsersLoadedByTheProducer(t *testing.T) {
	testenv.SkipShort(t, "drives headless Chromium")
	t.Parallel()
	browser := testenv.Program(t, "Chromium", "apt-get install chromium", "chromium", "chromium-browser", "google-chrome")
	e := newTestEnv(t)
	key, line := createKey(t, "support", "pii")
	keysFile := filepath.Join(t.TempDir(), "api-keys")
	require.NoError(t, os.WriteFile(keysFile, []byte(line+"\n"), 0o600))
	delete(e.vars, "AUTH_MODE")
	e.vars["API_KEYS_FILE"] = keysFile
	base := e.startConsumer(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	waitJS := func(what, cond string) {
		t.Helper()
		wait.Until(t, 30*time.Second, what, func() bool {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
			require.NoError(t, err, what)
			return ok
		})
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/")))
	waitJS("the sign-in form", `!document.querySelector('#signin').hidden`)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#token"), key),
		chromedp.Click(chromedp.CSS("#signin-button"))))
	waitJS("signed in", `document.querySelector('#who').textContent === 'support · pii'`)
	waitJS("the page's stream is live", `document.querySelector('#state').textContent === 'live'`)
	waitJS("the table is empty", `document.querySelectorAll('#rows tr').length === 0`)

	path := filepath.Join(t.TempDir(), "users.csv")
	require.NoError(t, os.WriteFile(path, []byte(input), 0o600))
	e.produce(t, path)

	rowIDs := `Array.from(document.querySelectorAll('#rows tr')).map(tr => tr.dataset.id).sort().join(',')`
	waitJS("the loaded users appear", rowIDs+` === '1,10,2,3,4'`)
	email, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(`#rows tr[data-id="3"] td:nth-child(4)`)))
	require.NoError(t, err)
	require.Equal(t, "zoe@example.com", email, "the page shows the decrypted email")

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	require.NoError(t, err)
	shot := filepath.Join(t.TempDir(), "live-page.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
}
