package httpapi

import (
	"context"
	"crypto/tls"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Limits keep one client, or many, from taking what the others and
// ingestion need, and keep the API from being read through a hostname it
// does not serve. Zero values: the loopback hosts, no rate limit and no
// stream caps (cmd/consumer passes its configured defaults).
type Limits struct {
	// AllowedHosts are the Host header values served, each a hostname
	// or IP literal (any port) or host:port (that port only); "*" allows
	// any host. Nil: localhost, 127.0.0.1 and [::1] on any port. Any other
	// Host gets 421, so that a page on another origin that rebinds its
	// DNS name to this server's address cannot read the API.
	AllowedHosts []string
	// Rate is each principal's sustained requests per second, Burst the
	// requests it may make at once; Rate 0: no rate limit.
	Rate  float64
	Burst int
	// MaxStreams caps the SSE streams open at once in the process, and
	// MaxStreamsPerPrincipal those of one principal; 0: no cap.
	MaxStreams             int
	MaxStreamsPerPrincipal int
}

// DefaultAllowedHosts are the Host values served when none are configured.
var DefaultAllowedHosts = []string{"localhost", "127.0.0.1", "[::1]"}

// Values assigned to headers without Header.Set's allocation.
var (
	noStore = []string{"no-store"}
	// hsts tells browsers to use HTTPS only for a year: sent only over
	// TLS (browsers ignore it over plain HTTP anyway).
	hsts = []string{"max-age=31536000"}
)

// hostRule is one AllowedHosts entry: a lowercased host without brackets,
// and a port or "" for any.
type hostRule struct{ host, port string }

// hostRules parses AllowedHosts; any is true when "*" is among them.
func hostRules(entries []string) (rules []hostRule, anyHost bool) {
	if entries == nil {
		entries = DefaultAllowedHosts
	}
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "":
			continue
		case e == "*":
			return nil, true
		}
		host, port := splitHost(e)
		rules = append(rules, hostRule{host, port})
	}
	return rules, false
}

// splitHost splits "host", "host:port", "[v6]" or "[v6]:port" into the
// host without brackets or a trailing dot, and the port ("" when none).
func splitHost(s string) (host, port string) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	}
	return strings.TrimSuffix(host, "."), port
}

// hostAllowed reports whether the request's Host header is served.
func hostAllowed(rules []hostRule, hostHeader string) bool {
	host, port := splitHost(hostHeader)
	if host == "" {
		return false
	}
	for _, r := range rules {
		if strings.EqualFold(r.host, host) && (r.port == "" || r.port == port) {
			return true
		}
	}
	return false
}

// checkHost answers 421 to a request whose Host is not allowed.
func (a *API) checkHost(next http.Handler) http.Handler {
	if a.anyHost {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(a.hosts, r.Host) {
			a.metrics.rejected.WithLabelValues("host").Inc()
			writeErrorStatus(w, http.StatusMisdirectedRequest, "this server does not serve the host "+strconv.Quote(truncate(r.Host, 64)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// clientKey names whose budget a request spends: its principal's, or,
// without one (authentication off: every request is the same anonymous
// principal), its client IP's, so that one client cannot take what all
// the others share.
type clientKey struct{ kind, name string }

func keyOf(r *http.Request) clientKey {
	if p, ok := principalOf(r.Context()); ok && p.Kind != "" && p.Kind != anonymous.Kind {
		return clientKey{string(p.Kind), p.Name}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return clientKey{"ip", host}
}

// rateLimiter holds a token bucket per client key.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[clientKey]*rate.Limiter
	sweepSize int // sweep idle buckets once the map grows past this
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	if burst < 1 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst,
		buckets: make(map[clientKey]*rate.Limiter), sweepSize: 1024}
}

// allow takes a token from k's bucket, or returns how long until one is
// there.
func (l *rateLimiter) allow(k clientKey, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	b, ok := l.buckets[k]
	if !ok {
		if len(l.buckets) >= l.sweepSize {
			l.sweepLocked(now)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[k] = b
	}
	l.mu.Unlock()
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweepLocked forgets the buckets that have refilled: a fresh one is the
// same. It keeps the map's size to the clients active in the last
// Burst/Rate seconds.
func (l *rateLimiter) sweepLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	l.sweepSize = max(1024, 2*len(l.buckets))
}

// rateLimit answers 429 to a principal over its request rate.
func (a *API) rateLimit(next http.Handler) http.Handler {
	if a.rate == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := a.rate.allow(keyOf(r), time.Now()); !ok {
			a.metrics.rejected.WithLabelValues("rate").Inc()
			tooMany(w, wait, "request rate limit exceeded")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tooMany writes 429 with Retry-After, in whole seconds, at least one.
func tooMany(w http.ResponseWriter, wait time.Duration, msg string) {
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	w.Header()["Retry-After"] = []string{strconv.FormatInt(secs, 10)}
	writeErrorStatus(w, http.StatusTooManyRequests, msg)
}

// streamCaps counts the open SSE streams, in all and per client key.
type streamCaps struct {
	max, perKey int
	open        atomic.Int64

	mu    sync.Mutex
	byKey map[clientKey]int
}

// acquire takes a stream slot for k, or says which cap is full.
func (c *streamCaps) acquire(k clientKey) (ok bool, which string) {
	if c.max > 0 && c.open.Add(1) > int64(c.max) {
		c.open.Add(-1)
		return false, "sse_global"
	}
	if c.perKey > 0 {
		c.mu.Lock()
		if c.byKey[k] >= c.perKey {
			c.mu.Unlock()
			if c.max > 0 {
				c.open.Add(-1)
			}
			return false, "sse_principal"
		}
		c.byKey[k]++
		c.mu.Unlock()
	}
	return true, ""
}

func (c *streamCaps) release(k clientKey) {
	if c.max > 0 {
		c.open.Add(-1)
	}
	if c.perKey > 0 {
		c.mu.Lock()
		if c.byKey[k]--; c.byKey[k] <= 0 {
			delete(c.byKey, k)
		}
		c.mu.Unlock()
	}
}

// streamRetryAfter is what a client told the stream caps are full waits
// before trying again: streams last long, so a slot rarely frees at once.
const streamRetryAfter = 10 * time.Second

// capStreams answers 429 to a stream beyond the process's or its
// principal's cap, and holds a slot for the stream's life otherwise.
func (a *API) capStreams(next http.Handler) http.Handler {
	if a.streams == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := keyOf(r)
		ok, which := a.streams.acquire(k)
		if !ok {
			a.metrics.rejected.WithLabelValues(which).Inc()
			msg := "too many open streams"
			if which == "sse_principal" {
				msg = "too many open streams for this principal"
			}
			tooMany(w, streamRetryAfter, msg)
			return
		}
		defer a.streams.release(k)
		next.ServeHTTP(w, r)
	})
}

// connKey is where NewServer's ConnContext puts the connection.
type connKey struct{}

func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// limitSendBuffer sets the kernel send buffer of the request's TCP
// connection to n bytes. Linux grows an unset buffer up to several
// megabytes for a fast link; for a stream whose client stops reading that
// is memory held until the write deadline. A set size also stops the
// growth. Without the connection (a server not made by NewServer) it does
// nothing.
func limitSendBuffer(ctx context.Context, n int) {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetWriteBuffer(n) //nolint:errcheck // best effort: the deadline still bounds the stream
	}
}
