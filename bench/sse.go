package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/postgres"
)

// sseBaseID is the first id of the users the SSE rounds commit, above any
// loaded id; sseWarmID, just below it, is the warm-up user's.
const (
	sseBaseID = int64(2_000_000_000)
	sseWarmID = sseBaseID - 1
)

// sseLiveTimeout bounds the wait for every stream to reach its live phase.
const sseLiveTimeout = time.Minute

// SSEResult is the live delivery of committed users to many subscribers.
type SSEResult struct {
	Subscribers    int
	Expected       int // events every subscriber should get, summed
	Delivered      int
	P50, P99, Max  time.Duration // arrival − commit
	ConnectSeconds float64       // to open every stream
}

// sse opens cfg.SSESubs streams of GET /users/sse filtered on a first name
// no loaded user has (so the snapshot is empty and the streams go live),
// then commits one warm-up user and waits until every stream has it: each
// stream took its snapshot when it opened, so it gets that user in its live
// phase. Then it commits cfg.SSERounds batches of cfg.SSEBatch users with
// that name straight through the store, as the consumer does, and measures
// when each user reaches each stream against the time its commit returned.
func (h *harness) sse(ctx context.Context, cons *consumer, cfg Config) (SSEResult, error) {
	res := SSEResult{Subscribers: cfg.SSESubs, Expected: cfg.SSESubs * cfg.SSERounds * cfg.SSEBatch}
	key, err := emailcrypt.ParseKey(cons.key)
	if err != nil {
		return res, err
	}
	keys, err := emailcrypt.New(key)
	if err != nil {
		return res, err
	}
	store, err := postgres.Open(ctx, cons.dbURL, postgres.PoolConfig{MaxConns: 2})
	if err != nil {
		return res, err
	}
	defer store.Close()

	marker := "Bsse" + h.runID
	streamURL := "http://" + cons.addr + "/users/sse?first_name=" + url.QueryEscape(marker)
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: -1, DisableCompression: true, DisableKeepAlives: true,
	}}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type arrival struct {
		id int64
		at time.Time
	}
	arrivals := make([][]arrival, cfg.SSESubs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var streamErr error
	want := cfg.SSERounds * cfg.SSEBatch
	allDone := make(chan struct{})
	var finished sync.WaitGroup
	finished.Add(cfg.SSESubs)
	go func() { finished.Wait(); close(allDone) }()
	// Every stream counts itself once: when it gets the warm-up user, or
	// when it ends before that (it is no longer awaited).
	allLive := make(chan struct{})
	var live sync.WaitGroup
	live.Add(cfg.SSESubs)
	go func() { live.Wait(); close(allLive) }()

	// Open the streams, 100 at a time.
	start := time.Now()
	var open errgroup.Group
	open.SetLimit(100)
	for i := range cfg.SSESubs {
		open.Go(func() error {
			req, _ := http.NewRequestWithContext(sctx, http.MethodGet, streamURL, nil)
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Authorization", "Bearer "+h.apiKey)
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("open stream %d: %w", i, err)
			}
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				return fmt.Errorf("open stream %d: status %d", i, resp.StatusCode)
			}
			wg.Go(func() {
				defer resp.Body.Close()
				got, counted := 0, false
				countLive := func() {
					if !counted {
						counted = true
						live.Done()
					}
				}
				r := bufio.NewReaderSize(resp.Body, 16<<10)
				for {
					line, err := r.ReadSlice('\n')
					if err != nil {
						if sctx.Err() == nil && got < want {
							mu.Lock()
							streamErr = fmt.Errorf("stream %d ended after %d of %d users: %v", i, got, want, err)
							mu.Unlock()
							finished.Done()
						}
						countLive()
						return
					}
					if !bytes.HasPrefix(line, []byte("data:")) {
						continue
					}
					now := time.Now()
					if id, ok := jsonID(line); ok && id == sseWarmID {
						countLive()
					} else if ok {
						arrivals[i] = append(arrivals[i], arrival{id, now})
						if got++; got == want {
							finished.Done()
						}
					}
				}
			})
			return nil
		})
	}
	if err := open.Wait(); err != nil {
		return res, err
	}
	res.ConnectSeconds = time.Since(start).Seconds()

	// commit writes users ids[0].. with the marker name in one transaction.
	commit := func(ids ...int64) ([]viswals.SealedUser, error) {
		batch := make([]viswals.SealedUser, len(ids))
		var err error
		for i, id := range ids {
			rec := viswals.Record{
				User: viswals.User{ID: id, FirstName: marker, LastName: "Live",
					Email: fmt.Sprintf("sse.%d@example.com", id), CreatedAt: time.Now().UTC().Truncate(time.Millisecond)},
				Version: viswals.Version{Load: time.Now().UnixNano(), Line: int64(i + 1)},
			}
			if batch[i], err = keys.Seal(rec); err != nil {
				return nil, err
			}
		}
		if _, _, err := store.UpsertBatch(ctx, batch); err != nil {
			return nil, fmt.Errorf("commit SSE batch: %w", err)
		}
		return batch, nil
	}

	// Every stream is live once it has the warm-up user.
	if _, err := commit(sseWarmID); err != nil {
		return res, err
	}
	select {
	case <-allLive:
	case <-time.After(sseLiveTimeout):
		return res, fmt.Errorf("not every SSE stream got the warm-up user within %s", sseLiveTimeout)
	case <-ctx.Done():
		return res, ctx.Err()
	}

	commits := map[int64]time.Time{}
	for round := range cfg.SSERounds {
		ids := make([]int64, cfg.SSEBatch)
		for i := range ids {
			ids[i] = sseBaseID + int64(round*cfg.SSEBatch+i)
		}
		batch, err := commit(ids...)
		if err != nil {
			return res, err
		}
		at := time.Now()
		for _, u := range batch {
			commits[u.ID] = at
		}
		time.Sleep(500 * time.Millisecond) // each round on its own, not queued behind the last
	}
	select {
	case <-allDone:
	case <-time.After(20 * time.Second):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	cancel()
	wg.Wait()

	var lat []time.Duration
	for _, as := range arrivals {
		for _, a := range as {
			c, ok := commits[a.id]
			if !ok {
				continue
			}
			lat = append(lat, max(0, a.at.Sub(c)))
		}
	}
	res.Delivered = len(lat)
	if len(lat) == 0 {
		if streamErr != nil {
			return res, streamErr
		}
		return res, fmt.Errorf("no SSE event arrived")
	}
	slices.Sort(lat)
	res.P50 = lat[len(lat)/2]
	res.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	res.Max = lat[len(lat)-1]
	return res, nil
}

// jsonID finds the value of the first "id" member in an SSE data line.
func jsonID(line []byte) (int64, bool) {
	i := bytes.Index(line, []byte(`"id":`))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(line[i+5:], " ")
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	id, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return id, err == nil
}
