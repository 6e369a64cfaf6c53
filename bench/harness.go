package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/viswals/viswals/auth"
)

// harness holds what every measurement shares: the built binaries, the
// work directory and a unique name for this run's databases and queues.
type harness struct {
	cfg    Config
	dir    string
	ownDir bool
	bin    map[string]string // name → path of the built binary
	runID  string
	seq    int
	key    string // ENCRYPTION_KEY of every consumer of the run
	// apiKey is an admin's API key, in keysFile: the consumers run with
	// authentication on, as in production.
	apiKey, keysFile string
	cleanup          []func()
}

func newHarness(ctx context.Context, cfg Config) (*harness, error) {
	h := &harness{cfg: cfg, bin: map[string]string{}}
	h.dir = cfg.WorkDir
	if h.dir == "" {
		d, err := os.MkdirTemp("", "viswals-bench-")
		if err != nil {
			return nil, err
		}
		h.dir, h.ownDir = d, true
	} else if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return nil, err
	}
	var k [32]byte
	rand.Read(k[:])
	h.key = base64.StdEncoding.EncodeToString(k[:])
	apiKey, line, err := auth.GenerateKey("bench", auth.RoleAdmin)
	if err != nil {
		return nil, err
	}
	h.apiKey, h.keysFile = apiKey, filepath.Join(h.dir, "api-keys")
	if err := os.WriteFile(h.keysFile, []byte(line+"\n"), 0o600); err != nil {
		return nil, err
	}
	var id [4]byte
	rand.Read(id[:])
	h.runID = fmt.Sprintf("%x", id)

	for _, tool := range []string{"psql", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil && (tool == "psql" || !cfg.LoadOnly) {
			return nil, fmt.Errorf("%s is not installed (apt-get install -y %s)", tool, map[string]string{"psql": "postgresql-client", "wrk": "wrk"}[tool])
		}
	}
	root := cfg.Root
	if root == "" {
		wd, _ := os.Getwd()
		r, err := FindRoot(wd)
		if err != nil {
			return nil, err
		}
		root = r
	}
	h.logf("building binaries into %s", h.dir)
	for _, pkg := range []string{"cmd/producer", "cmd/consumer", "cmd/gencsv", "bench/cmd/barehttp"} {
		name := filepath.Base(pkg)
		out := filepath.Join(h.dir, name)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./"+pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./%s: %w\n%s", pkg, err, b)
		}
		h.bin[name] = out
	}
	return h, nil
}

func (h *harness) close() {
	for i := len(h.cleanup) - 1; i >= 0; i-- {
		h.cleanup[i]()
	}
	if h.ownDir {
		os.RemoveAll(h.dir)
	}
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.cfg.Out, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// name returns a fresh name for a database, queue or key prefix.
func (h *harness) name(kind string) string {
	h.seq++
	return fmt.Sprintf("bench_%s_%s_%d", kind, h.runID, h.seq)
}

// generate writes a clean CSV of rows users (cached per size).
func (h *harness) generate(ctx context.Context, rows int) (string, error) {
	path := filepath.Join(h.dir, fmt.Sprintf("users-%d.csv", rows))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	h.logf("generating %d rows", rows)
	cmd := exec.CommandContext(ctx, h.bin["gencsv"], "-rows", strconv.Itoa(rows), "-seed", "7", "-o", path)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("gencsv: %w\n%s", err, b)
	}
	return path, nil
}

// dbURL is the admin URL with another database.
func (h *harness) dbURL(db string) string {
	u, err := url.Parse(h.cfg.PostgresURL)
	if err != nil {
		return h.cfg.PostgresURL
	}
	u.Path = "/" + db
	return u.String()
}

// createDB makes an empty database and registers its removal.
func (h *harness) createDB(ctx context.Context, db string) error {
	conn, err := pgx.Connect(ctx, h.cfg.PostgresURL)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	h.cleanup = append(h.cleanup, func() { h.dropDB(db) })
	return nil
}

func (h *harness) dropDB(db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, h.cfg.PostgresURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
}

// dropQueue deletes a queue and its dead-letter queue and exchange.
func (h *harness) dropQueue(q string) {
	conn, err := amqp.Dial(h.cfg.RabbitURL)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	ch.QueueDelete(q, false, false, false)
	ch.QueueDelete(q+".dlq", false, false, false)
	ch.ExchangeDelete(q+".dlx", false, false)
}

// dropKeys removes the cache entries of ids 1..rows and of the SSE users
// under prefix: UNLINK by name, since a SCAN would walk the whole shared
// keyspace.
func (h *harness) dropKeys(prefix string, rows int) {
	opts, err := redis.ParseURL(h.cfg.RedisURL)
	if err != nil {
		return
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ids []int64
	for id := int64(1); id <= int64(rows); id++ {
		ids = append(ids, id)
	}
	for id := sseBaseID; id < sseBaseID+100_000; id++ {
		ids = append(ids, id)
	}
	const chunk = 10_000
	pipe := c.Pipeline()
	for i := 0; i < len(ids); i += chunk {
		keys := make([]string, 0, chunk)
		for _, id := range ids[i:min(len(ids), i+chunk)] {
			keys = append(keys, prefix+strconv.FormatInt(id, 10))
		}
		pipe.Unlink(ctx, keys...)
		if pipe.Len() == 10 {
			pipe.Exec(ctx)
		}
	}
	pipe.Exec(ctx)
}

// bareCopy times psql \copy of the CSV into a fresh table with a primary key.
func (h *harness) bareCopy(ctx context.Context, csv string) (float64, error) {
	db := h.name("copy")
	if err := h.createDB(ctx, db); err != nil {
		return 0, err
	}
	dbURL := h.dbURL(db)
	create := exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", dbURL, "-c",
		"CREATE TABLE users_copy (id bigint PRIMARY KEY, first_name text, last_name text, email_address text, "+
			"created_at bigint, deleted_at bigint, merged_at bigint, parent_user_id bigint)")
	if b, err := create.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("psql create table: %w\n%s", err, b)
	}
	cp := exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", dbURL, "-c",
		fmt.Sprintf(`\copy users_copy FROM '%s' WITH (FORMAT csv, HEADER true)`, strings.ReplaceAll(csv, "'", "''")))
	start := time.Now()
	b, err := cp.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("psql \\copy: %w\n%s", err, b)
	}
	h.dropDB(db) // free the disk before the project's load
	return took.Seconds(), nil
}

// schemaCopy times psql \copy of the rows the project loaded into an
// empty copy of its users table (same columns, defaults and indexes): the
// floor of the project's own storage, against which the pipeline's
// overhead shows. The rows are exported first, untimed, in COPY's text
// format.
func (h *harness) schemaCopy(ctx context.Context, dbURL string) (float64, error) {
	file := filepath.Join(h.dir, "users-export.tsv")
	defer os.Remove(file)
	cols := "id, first_name, last_name, first_name_lc, last_name_lc, email_address, email_hash, " +
		"created_at, deleted_at, merged_at, parent_user_id, version_load, version_line"
	psql := func(cmd string) error {
		c := exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", dbURL, "-c", cmd)
		if b, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("psql %s: %w\n%s", cmd, err, b)
		}
		return nil
	}
	quoted := strings.ReplaceAll(file, "'", "''")
	if err := psql(fmt.Sprintf(`\copy (SELECT %s FROM users) TO '%s'`, cols, quoted)); err != nil {
		return 0, err
	}
	if err := psql("CREATE TABLE users_copy (LIKE users INCLUDING ALL)"); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := psql(fmt.Sprintf(`\copy users_copy (%s) FROM '%s'`, cols, quoted)); err != nil {
		return 0, err
	}
	took := time.Since(start)
	return took.Seconds(), psql("DROP TABLE users_copy")
}

// loadResult is one end-to-end load.
type loadResult struct {
	DBURL           string  // the database loaded
	Seconds         float64 // producer start → last row committed
	ProducerSeconds float64 // producer start → producer exit (all confirmed)
	ConsumerPeakRSS int64
	ProducerPeakRSS int64
	RSS             []RSSSample
	Flood           *FloodResult // the SSE flood during the load, if any
	CPU             []CPUShare   // CPU seconds by part during the load
}

// consumer is a running consumer process.
type consumer struct {
	proc   *process
	addr   string // host:port of its HTTP server
	dbURL  string
	prefix string
	key    string
}

func (c *consumer) stop() { c.proc.stop() }

// load runs a fresh consumer (new database, queue and key prefix) and the
// producer over csv, and returns once every row is committed. With keep
// the consumer is returned still running, for the reads.
func (h *harness) load(ctx context.Context, csv string, rows int, env []string, keep, flood bool) (loadResult, *consumer, error) {
	var res loadResult
	db, queue, prefix := h.name("e2e"), h.name("q"), h.name("k")+":users:"
	if err := h.createDB(ctx, db); err != nil {
		return res, nil, err
	}
	h.cleanup = append(h.cleanup, func() { h.dropQueue(queue) }, func() { h.dropKeys(prefix, rows) })
	port, err := freePort()
	if err != nil {
		return res, nil, err
	}
	c := &consumer{addr: "127.0.0.1:" + strconv.Itoa(port), dbURL: h.dbURL(db), prefix: prefix, key: h.key}
	res.DBURL = c.dbURL
	common := append(append([]string{}, h.cfg.Env...), env...)
	common = append(common,
		"RABBITMQ_CONN_URL="+h.cfg.RabbitURL,
		"RABBITMQ_QUEUE_NAME="+queue,
		"LOG_LEVEL=warn",
	)
	// The limits stay on, so that their cost is in the figures, but far
	// above what one benchmark client does: the runs measure throughput
	// and thousands of streams from one address. -env overrides them.
	limits := []string{"API_RATE_LIMIT=1000000000", "API_RATE_BURST=1000000000",
		"SSE_MAX_STREAMS=100000", "SSE_MAX_STREAMS_PER_PRINCIPAL=100000"}
	consEnv := append(append(limits, common...),
		"POSTGRES_CONN_URL="+c.dbURL,
		"REDIS_CONN_URL="+h.cfg.RedisURL,
		"REDIS_KEY_PREFIX="+prefix,
		"CONSUMER_PORT="+c.addr,
		"ENCRYPTION_KEY="+h.key,
		"API_KEYS_FILE="+h.keysFile,
		"MIGRATE_DB=true",
	)
	c.proc, err = h.start(h.bin["consumer"], nil, consEnv, "consumer-"+queue)
	if err != nil {
		return res, nil, err
	}
	defer func() {
		if !keep {
			c.proc.stop()
		}
	}()
	if err := waitHTTP(ctx, "http://"+c.addr+"/healthz", 60*time.Second, c.proc); err != nil {
		c.proc.stop()
		return res, nil, fmt.Errorf("consumer did not come up: %w\n%s", err, c.proc.tail())
	}
	// The consumer declares the queue when it connects; wait for that so the
	// clock measures the load, not the consumer's start.
	if err := waitQueue(ctx, h.cfg.RabbitURL, queue, 30*time.Second); err != nil {
		c.proc.stop()
		return res, nil, err
	}
	ingested := metricReader("http://"+c.addr+"/metrics", h.apiKey, "viswals_rows_ingested_total")
	base, err := ingested(ctx)
	if err != nil {
		c.proc.stop()
		return res, nil, err
	}

	var endFlood func()
	if flood && h.cfg.Flood > 0 {
		h.logf("flood: opening %d SSE streams (read: %v)", h.cfg.Flood, h.cfg.FloodRead)
		stopFlood, err := h.flood(ctx, c.addr, h.cfg.Flood, h.cfg.FloodRead)
		if err != nil {
			c.proc.stop()
			return res, nil, err
		}
		var once sync.Once
		endFlood = func() {
			once.Do(func() {
				fr := stopFlood()
				res.Flood = &fr
				h.logf("flood: %d streams opened in all, %d refused, %d failed", fr.Opened, fr.Refused, fr.Failures)
			})
		}
		defer endFlood()
	}
	rssStop := c.proc.sampleRSS(100 * time.Millisecond)
	cpuBefore := cpuSnapshot()
	start := time.Now()
	prod, err := h.start(h.bin["producer"], []string{"--rejects", filepath.Join(h.dir, queue+".rejects.csv"), csv}, common, "producer-"+queue)
	if err != nil {
		c.proc.stop()
		return res, nil, err
	}
	prodDone := make(chan error, 1)
	go func() { prodDone <- prod.wait() }()
	var prodErr error
	prodExited := false
	tick := time.NewTicker(h.cfg.Poll)
	defer tick.Stop()
	timeout := time.After(time.Duration(rows/1000+120) * time.Second)
	var lastPoll time.Time
	seen := 0.0
	for done := false; !done; {
		select {
		case <-ctx.Done():
			prod.stop()
			c.proc.stop()
			return res, nil, ctx.Err()
		case <-timeout:
			prod.stop()
			c.proc.stop()
			return res, nil, fmt.Errorf("load of %d rows did not finish in time\nproducer: %s\nconsumer: %s", rows, prod.tail(), c.proc.tail())
		case prodErr = <-prodDone:
			prodExited = true
			res.ProducerSeconds = time.Since(start).Seconds()
			if prodErr != nil {
				c.proc.stop()
				return res, nil, fmt.Errorf("producer: %w\n%s", prodErr, prod.tail())
			}
			prodDone = nil
		case <-tick.C:
			// Scraping /metrics costs the consumer CPU: poll coarsely
			// until the last tenth of the rows, then every cfg.Poll.
			if time.Since(lastPoll) < 100*time.Millisecond && seen < 0.9*float64(rows) {
				continue
			}
			lastPoll = time.Now()
			n, err := ingested(ctx)
			if err == nil {
				seen = n - base
			}
			if err == nil && seen >= float64(rows) {
				res.Seconds = time.Since(start).Seconds()
				done = true
			}
			if c.proc.exited() {
				return res, nil, fmt.Errorf("consumer exited during the load\n%s", c.proc.tail())
			}
		}
	}
	res.RSS = rssStop()
	if endFlood != nil {
		endFlood() // the streams end with the load, before the reads
	}
	cpuAfter := cpuSnapshot()
	if !prodExited {
		if err := <-prodDone; err != nil {
			c.proc.stop()
			return res, nil, fmt.Errorf("producer: %w\n%s", err, prod.tail())
		}
		res.ProducerSeconds = time.Since(start).Seconds()
	}
	res.ProducerPeakRSS = prod.peakRSS()
	var prodCPU float64
	if ps := prod.cmd.ProcessState; ps != nil {
		prodCPU = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	for pid := range cpuAfter {
		if pid == prod.cmd.Process.Pid {
			delete(cpuAfter, pid)
		}
	}
	res.CPU = cpuSince(cpuBefore, cpuAfter, map[string]float64{"producer": prodCPU})
	res.ConsumerPeakRSS = c.proc.peakRSS()
	if err := checkCount(ctx, c.dbURL, rows); err != nil {
		c.proc.stop()
		return res, nil, err
	}
	if keep {
		return res, c, nil
	}
	return res, nil, nil
}

// checkCount verifies the table holds rows users.
func checkCount(ctx context.Context, dbURL string, rows int) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		return err
	}
	if n != rows {
		return fmt.Errorf("users holds %d rows after the load, want %d", n, rows)
	}
	return nil
}

// metricReader returns a function reading one counter from a Prometheus
// text endpoint, as the holder of apiKey.
func metricReader(u, apiKey, name string) func(context.Context) (float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	return func(ctx context.Context) (float64, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("Accept-Encoding", "identity") // spare the consumer the gzip
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if bytes.HasPrefix(line, []byte(name+" ")) {
				return strconv.ParseFloat(string(line[len(name)+1:]), 64)
			}
		}
		return 0, fmt.Errorf("%s has no %s", u, name)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitHTTP(ctx context.Context, u string, within time.Duration, p *process) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p != nil && p.exited() {
			return errors.New("the process exited")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s", u, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func waitQueue(ctx context.Context, rabbitURL, queue string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		conn, err := amqp.Dial(rabbitURL)
		if err == nil {
			ch, err2 := conn.Channel()
			if err2 == nil {
				q, err3 := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
				if err3 == nil && q.Consumers > 0 {
					conn.Close()
					return nil
				}
			}
			conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queue %s has no consumer after %s", queue, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// process is a started binary with its output in a log file.
type process struct {
	cmd     *exec.Cmd
	log     string
	done    chan struct{}
	err     error
	mu      sync.Mutex
	hwm     int64 // highest VmHWM seen, bytes
	stopped bool
}

func (h *harness) start(bin string, args, env []string, name string) (*process, error) {
	logPath := filepath.Join(h.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = h.dir // away from the repository's .env
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &process{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	h.cleanup = append(h.cleanup, p.stop)
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) wait() error { <-p.done; return p.err }

// stop sends SIGTERM, and SIGKILL if the process has not exited in 15s.
func (p *process) stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		<-p.done
		return
	}
	p.stopped = true
	p.mu.Unlock()
	p.readHWM()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the end of the process's log.
func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// RSSSample is the resident set size of a process at a moment of a load.
type RSSSample struct {
	Seconds float64 // since the sampling started
	RSS     int64   // bytes
}

// readHWM records the process's VmHWM (peak RSS) and returns its VmRSS.
func (p *process) readHWM() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	var rss int64
	for _, l := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &kb); err == nil {
			p.mu.Lock()
			p.hwm = max(p.hwm, kb*1024)
			p.mu.Unlock()
		}
		if _, err := fmt.Sscanf(l, "VmRSS: %d kB", &kb); err == nil {
			rss = kb * 1024
		}
	}
	return rss
}

// sampleRSS samples VmRSS every interval until the returned function is
// called, which returns the samples.
func (p *process) sampleRSS(every time.Duration) func() []RSSSample {
	stop := make(chan struct{})
	out := make(chan []RSSSample)
	go func() {
		start := time.Now()
		var samples []RSSSample
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if rss := p.readHWM(); rss > 0 {
				samples = append(samples, RSSSample{time.Since(start).Seconds(), rss})
			}
			select {
			case <-stop:
				out <- samples
				return
			case <-p.done:
				<-stop
				out <- samples
				return
			case <-t.C:
			}
		}
	}()
	return func() []RSSSample { close(stop); return <-out }
}

// peakRSS is the highest RSS of the process: the kernel's maxrss once it
// has exited, the highest VmHWM seen while it runs.
func (p *process) peakRSS() int64 {
	if !p.exited() {
		p.readHWM()
	} else if p.cmd.ProcessState != nil {
		if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			p.mu.Lock()
			p.hwm = max(p.hwm, ru.Maxrss*1024)
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hwm
}
