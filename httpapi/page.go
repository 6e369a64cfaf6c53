package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
)

//go:embed web/index.html
var webFS embed.FS

// handlePage serves the live page. Its script and style are inline, and
// the Content-Security-Policy allows exactly those (by hash) and nothing
// else: no other script can run even if a name slipped into the markup.
func handlePage() http.Handler {
	page, err := webFS.ReadFile("web/index.html")
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	csp := "default-src 'none'; connect-src 'self'; img-src 'self'; " +
		"script-src " + inlineHash(page, "script") + "; style-src " + inlineHash(page, "style") +
		"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		w.Write(page)
	})
}

// inlineHash returns the CSP source for the first <tag> element's content.
func inlineHash(page []byte, tag string) string {
	open, closing := []byte("<"+tag+">"), []byte("</"+tag+">")
	i := bytes.Index(page, open)
	j := bytes.Index(page, closing)
	if i < 0 || j < i {
		panic("httpapi: web/index.html has no <" + tag + "> element")
	}
	sum := sha256.Sum256(page[i+len(open) : j])
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}
