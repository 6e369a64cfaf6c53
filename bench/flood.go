package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// FloodResult is what the SSE flooder did during the main load.
type FloodResult struct {
	Streams  int   // streams it kept open
	Read     bool  // whether it read them
	Opened   int64 // streams the consumer accepted, the first ones included
	Refused  int64 // answers other than 200 (a cap: 429)
	Failures int64 // connections that failed
}

// flood holds n unfiltered GET /users/sse streams open against addr, as
// a client flooding the API would: each sends the whole table, then every
// user the load commits. With read false it never reads them, so the
// consumer's writes stall once the buffers fill, until its write deadline
// drops the stream; with read true it reads and discards everything. A
// stream that ends is opened again at once. It returns once all n are
// open; stop ends them and returns the counts.
func (h *harness) flood(ctx context.Context, addr string, n int, read bool) (stop func() FloodResult, err error) {
	ctx, cancel := context.WithCancel(ctx)
	res := FloodResult{Streams: n, Read: read}
	var opened, refused, failures atomic.Int64
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: -1, DisableCompression: true, DisableKeepAlives: true,
		// A small receive window, so that a stalled stream stalls soon:
		// the consumer's side is what is measured.
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, a)
			if tc, ok := c.(*net.TCPConn); ok && !read {
				tc.SetReadBuffer(32 << 10)
			}
			return c, err
		},
	}}
	open := func() (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/users/sse", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+h.apiKey)
		resp, err := client.Do(req)
		if err != nil {
			failures.Add(1)
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			refused.Add(1)
			resp.Body.Close()
			return nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		opened.Add(1)
		return resp, nil
	}
	var wg sync.WaitGroup
	var up sync.WaitGroup
	up.Add(n)
	for range n {
		wg.Go(func() {
			first := true
			for ctx.Err() == nil {
				resp, err := open()
				if first {
					first = false
					up.Done()
				}
				if err != nil {
					select { // a refused or failed stream tries again soon
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
				if read {
					io.Copy(io.Discard, resp.Body)
				} else {
					<-ctx.Done() // hold it, unread, until the end or a drop
				}
				resp.Body.Close()
			}
		})
	}
	up.Wait()
	if opened.Load() < int64(n) {
		cancel()
		wg.Wait()
		return nil, fmt.Errorf("flood: only %d of %d streams opened (%d refused, %d failed)", opened.Load(), n, refused.Load(), failures.Load())
	}
	return func() FloodResult {
		cancel()
		wg.Wait()
		res.Opened, res.Refused, res.Failures = opened.Load(), refused.Load(), failures.Load()
		return res
	}, nil
}
