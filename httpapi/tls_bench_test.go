package httpapi

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/viswals/viswals/internal/tlstest"
	"github.com/viswals/viswals/tlsconfig"
)

// BenchmarkGetUserTransport is GET /users/{id} of the whole API through a
// real server and client on loopback: plain HTTP/1.1 (the yardstick), and
// over TLS as the consumer serves it (tlsconfig), with HTTP/1.1 and
// HTTP/2 on kept-alive connections, and with a new connection, so a
// full handshake, per request.
func BenchmarkGetUserTransport(b *testing.B) {
	api, _ := benchAPI(b, 10)
	dir := b.TempDir()
	ca, err := tlstest.NewCA(dir)
	if err != nil {
		b.Fatal(err)
	}
	pair, err := ca.Issue(dir, "server", tlstest.Leaf{Hosts: tlstest.Localhost})
	if err != nil {
		b.Fatal(err)
	}
	certs, err := tlsconfig.NewReloader(pair.CertFile, pair.KeyFile, nil)
	if err != nil {
		b.Fatal(err)
	}
	serverTLS, err := tlsconfig.Server(certs, "")
	if err != nil {
		b.Fatal(err)
	}
	serve := func(cfg *tls.Config) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := NewServer("", api)
		srv.TLSConfig, srv.ErrorLog = cfg, log.New(io.Discard, "", 0)
		if cfg != nil {
			go func() { _ = srv.ServeTLS(ln, "", "") }()
		} else {
			go func() { _ = srv.Serve(ln) }()
		}
		b.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	plain, secure := serve(nil), serve(serverTLS)
	client := func(h2, keepAlive bool) *http.Client {
		t := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.Pool()},
			ForceAttemptHTTP2: h2,
			DisableKeepAlives: !keepAlive,
		}
		if !h2 {
			t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
		}
		return &http.Client{Transport: t, Timeout: 10 * time.Second}
	}
	for _, bc := range []struct {
		name   string
		url    string
		client *http.Client
		proto  int
	}{
		{"http1-plain", "http://" + plain, client(false, true), 1},
		{"http1-tls", "https://" + secure, client(false, true), 1},
		{"http2-tls", "https://" + secure, client(true, true), 2},
		{"http1-plain-new-conn", "http://" + plain, client(false, false), 1},
		{"http1-tls-new-conn", "https://" + secure, client(false, false), 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := bc.client.Get(bc.url + "/users/7")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.ProtoMajor != bc.proto {
					b.Fatalf("%s %d", resp.Proto, resp.StatusCode)
				}
			}
		})
	}
}
