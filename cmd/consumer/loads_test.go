package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/wait"
	"github.com/viswals/viswals/rabbitmq"
)

// getLoad reads GET /loads/{id} as a generic JSON object.
func getLoad(t *testing.T, base string, id int64) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/loads/%d", base, id))
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Data map[string]any `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body.Data
}

// waitLoad waits until load id's record satisfies done and returns it.
func waitLoad(t *testing.T, base string, id int64, what string, done func(map[string]any) bool) map[string]any {
	t.Helper()
	var rec map[string]any
	wait.For(t, 30*time.Second, what, func() (bool, string) {
		status, r := getLoad(t, base, id)
		rec = r
		return status == 200 && done(r), fmt.Sprintf("%d %v", status, r)
	})
	return rec
}

// publishLoad publishes batches of load as the producer would, each under
// the given message id, then (unless summary is nil) its summary.
func publishLoad(t *testing.T, e *testEnv, load int64, batches map[string][]viswals.Record, order []string, summary *viswals.LoadSummary) {
	t.Helper()
	ctx := context.Background()
	pub, err := rabbitmq.NewPublisher(ctx, e.rabbit, e.queue, rabbitmq.PublisherOptions{})
	require.NoError(t, err)
	defer pub.Close()
	for _, id := range order {
		body, err := rabbitmq.Encode(rabbitmq.ContentTypeJSON, batches[id])
		require.NoError(t, err)
		require.NoError(t, pub.Publish(ctx, rabbitmq.Message{Body: body, ContentType: rabbitmq.ContentTypeJSON,
			Headers: rabbitmq.BatchHeaders(load, len(batches[id])), MessageID: id}))
	}
	if summary != nil {
		require.NoError(t, pub.Publish(ctx, rabbitmq.SummaryMessage(*summary)))
	}
	require.NoError(t, pub.Flush(ctx))
}

// Every load is recorded with counts that equal its input's: the producer's
// summary, the consumer's outcomes, dead letters included; a message sent
// twice is counted once; a load whose summary never came stays incomplete.
func TestLoadsRecorded(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	base := e.startConsumer(t)

	t.Run("a producer run", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "users.csv")
		require.NoError(t, os.WriteFile(path, []byte(input), 0o600))
		out := e.produce(t, path)
		m := regexp.MustCompile(`load=(\d+) broker=(\S+) queue=(\S+)`).FindStringSubmatch(out)
		require.NotNil(t, m, "the summary line names the load, broker and queue: %s", out)
		assert.Equal(t, e.queue, m[3])
		id, err := viswals.ParseLoadID(m[1])
		require.NoError(t, err)

		rec := waitLoad(t, base, id, "load complete", func(r map[string]any) bool { return r["state"] == viswals.LoadComplete })
		// Ids 1, 2, 3, 4, 10 are new; the first row of id 2 is superseded
		// by the later one in the same message.
		for k, want := range map[string]float64{"read": 11, "published": 6, "rejected": 5, "received": 6,
			"inserted": 5, "updated": 0, "unchanged": 1, "dead_lettered": 0} {
			assert.Equal(t, want, rec[k], k)
		}
		metrics := scrape(t, base)
		assert.Contains(t, metrics, "viswals_rows_rejected_total 5", "the producer's rejects reach the metrics")
		assert.Contains(t, metrics, `viswals_rows_total{outcome="inserted"} 5`)

		var table bytes.Buffer
		cfgArgs := []string{"loads", m[1]}
		require.NoError(t, run(context.Background(), cfgArgs, func(k string) string { return e.vars[k] }, strings.NewReader(""), &table, &bytes.Buffer{}))
		assert.Regexp(t, m[1]+`\s+complete\s+\S+\s+11\s+6\s+5\s+6\s+5\s+0\s+1\s+0`, table.String())
	})

	t.Run("dead letters and a message sent twice", func(t *testing.T) {
		const load = 1700000000000000001
		good := viswals.Record{User: viswals.User{ID: 101, FirstName: "A", Email: "a@example.com", CreatedAt: time.UnixMilli(0).UTC()}, Version: viswals.Version{Load: load, Line: 2}}
		bad := viswals.Record{User: viswals.User{ID: 102, FirstName: "B", Email: "no-at-sign", CreatedAt: time.UnixMilli(0).UTC()}, Version: viswals.Version{Load: load, Line: 3}}
		other := viswals.Record{User: viswals.User{ID: 103, FirstName: "C", Email: "c@example.com", CreatedAt: time.UnixMilli(0).UTC()}, Version: viswals.Version{Load: load, Line: 4}}
		publishLoad(t, e, load, map[string][]viswals.Record{"m1": {good, bad}, "m2": {other}},
			[]string{"m1", "m2", "m1"}, &viswals.LoadSummary{Load: load, Read: 3, Published: 3})
		rec := waitLoad(t, base, load, "all rows accounted for", func(r map[string]any) bool { return r["state"] != viswals.LoadIncomplete })
		assert.Equal(t, viswals.LoadDeadLettered, rec["state"])
		for k, want := range map[string]float64{"published": 3, "received": 3, "inserted": 2, "dead_lettered": 1} {
			assert.Equal(t, want, rec[k], k)
		}
		// The copy of m1 is consumed too; give it time to be (not) counted.
		waitIngested(t, base, "the copy of m1 consumed", 6+1+1+1)
		_, rec = getLoad(t, base, load)
		assert.Equal(t, 3.0, rec["received"], "a message sent twice is counted once")
	})

	t.Run("an undecodable message", func(t *testing.T) {
		const load = 1700000000000000003
		u := viswals.Record{User: viswals.User{ID: 301, Email: "u@example.com", CreatedAt: time.UnixMilli(0).UTC()}, Version: viswals.Version{Load: load, Line: 2}}
		publishLoad(t, e, load, map[string][]viswals.Record{"m1": {u}}, []string{"m1"}, nil)
		pub, err := rabbitmq.NewPublisher(context.Background(), e.rabbit, e.queue, rabbitmq.PublisherOptions{})
		require.NoError(t, err)
		defer pub.Close()
		require.NoError(t, pub.Publish(context.Background(), rabbitmq.Message{Body: []byte("[{not json"), ContentType: rabbitmq.ContentTypeJSON,
			Headers: rabbitmq.BatchHeaders(load, 2), MessageID: "m2"}))
		require.NoError(t, pub.Publish(context.Background(), rabbitmq.SummaryMessage(viswals.LoadSummary{Load: load, Read: 3, Published: 3})))
		require.NoError(t, pub.Flush(context.Background()))
		rec := waitLoad(t, base, load, "all rows accounted for", func(r map[string]any) bool { return r["state"] != viswals.LoadIncomplete })
		assert.Equal(t, viswals.LoadDeadLettered, rec["state"])
		for k, want := range map[string]float64{"received": 3, "inserted": 1, "dead_lettered": 2} {
			assert.Equal(t, want, rec[k], k)
		}
	})

	t.Run("a lost summary", func(t *testing.T) {
		const load = 1700000000000000002
		u := viswals.Record{User: viswals.User{ID: 201, Email: "d@example.com", CreatedAt: time.UnixMilli(0).UTC()}, Version: viswals.Version{Load: load, Line: 2}}
		publishLoad(t, e, load, map[string][]viswals.Record{"m1": {u}}, []string{"m1"}, nil)
		rec := waitLoad(t, base, load, "its row committed", func(r map[string]any) bool { return r["received"] == 1.0 })
		assert.Equal(t, viswals.LoadIncomplete, rec["state"], "without its summary a load is never done")
		assert.Nil(t, rec["published"])
	})

	t.Run("bad ids", func(t *testing.T) {
		status, _ := getLoad(t, base, 42)
		assert.Equal(t, http.StatusNotFound, status)
		resp, err := http.Get(base + "/loads/not-a-number")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
}

// scrape returns the consumer's /metrics text.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	require.NoError(t, err)
	return b.String()
}

// produceExit runs the producer binary and returns its exit code, stdout
// and stderr.
func (e *testEnv) produceExit(t *testing.T, path string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(buildProducer(t), append(args, path)...)
	cmd.Env = os.Environ()
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, stdout.String(), stderr.String()
}

// producer --wait exits 0 once the consumer committed the whole load, 1
// with the count when rows were dead-lettered, and 1 at --wait-timeout
// when no consumer is there, having shown that it waits.
func TestProducerWait(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.csv")
	require.NoError(t, os.WriteFile(path, []byte(input), 0o600))

	t.Run("no consumer", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		start := time.Now()
		code, out, errOut := e.produceExit(t, path, "--wait", "--wait-timeout", "2s", "--progress", "plain")
		assert.Equal(t, 1, code, "stdout %s\nstderr %s", out, errOut)
		assert.Contains(t, errOut, "committed: 0/6 rows (waiting for the consumers)")
		assert.Contains(t, errOut, "gave up after 2s without progress (--wait-timeout): the consumers committed 0 of 6 rows")
		assert.Less(t, time.Since(start), 30*time.Second)
	})

	t.Run("committed", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		e.startConsumer(t)
		code, out, errOut := e.produceExit(t, path, "--wait", "--progress", "plain")
		require.Equal(t, 0, code, "stdout %s\nstderr %s", out, errOut)
		assert.Regexp(t, `load=\d+ state=complete received=6 inserted=5 updated=0 unchanged=1 dead_lettered=0`, out)
		assert.Contains(t, errOut, "committed: 6/6 rows")
	})

	t.Run("rows dead-lettered", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		base := e.startConsumer(t)
		// Postgres refuses one user (a rule the producer does not know):
		// the consumer dead-letters it and commits the others, one by one
		// (so the two rows of id 2 are an insert and an update).
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, e.dbURL)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `ALTER TABLE users ADD CONSTRAINT no_zoe CHECK (first_name <> 'Zoë')`)
		conn.Close(ctx)
		require.NoError(t, err)
		code, out, errOut := e.produceExit(t, path, "--wait", "--progress", "none")
		assert.Equal(t, 1, code, "stdout %s\nstderr %s", out, errOut)
		m := regexp.MustCompile(`load=(\d+) state=dead_lettered received=6 inserted=4 updated=1 unchanged=0 dead_lettered=1`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		assert.Contains(t, errOut, "1 of 6 rows went to the dead-letter queue")

		// The cause fixed, the dead letter replayed and committed: the
		// load is complete, its row counted once, as inserted now.
		conn, err = pgx.Connect(ctx, e.dbURL)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `ALTER TABLE users DROP CONSTRAINT no_zoe`)
		conn.Close(ctx)
		require.NoError(t, err)
		var replay bytes.Buffer
		require.NoError(t, run(ctx, []string{"dlq", "replay"}, func(k string) string { return e.vars[k] }, strings.NewReader(""), &replay, &bytes.Buffer{}))
		assert.Contains(t, replay.String(), "replayed=1 ")
		id, err := viswals.ParseLoadID(m[1])
		require.NoError(t, err)
		rec := waitLoad(t, base, id, "the load complete", func(r map[string]any) bool { return r["state"] == viswals.LoadComplete })
		for k, want := range map[string]float64{"published": 6, "received": 6, "inserted": 5, "updated": 1, "unchanged": 0, "dead_lettered": 0} {
			assert.Equal(t, want, rec[k], k)
		}
	})

	t.Run("messages refused for their signature", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		// The consumer requires signed messages; the producer signs none.
		e.startProcess(t, http.DefaultClient, nil, map[string]string{"INGEST_SIGNING_KEY": testSigningKey}, &e.logs)
		start := time.Now()
		code, out, errOut := e.produceExit(t, path, "--wait", "--wait-timeout", "5m", "--progress", "none")
		assert.Equal(t, 1, code, "stdout %s\nstderr %s", out, errOut)
		assert.Contains(t, errOut, "failed their signature check")
		assert.Contains(t, errOut, "is INGEST_SIGNING_KEY the same for the producer and the consumers?")
		assert.Less(t, time.Since(start), time.Minute, "at once, not at --wait-timeout")
	})
}

// Every metric the observability pack's dashboard and alert rules read is
// one the consumer serves on /metrics.
func TestObservabilityPackNamesServedMetrics(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	base := e.startConsumer(t)
	resp, err := http.Get(base + "/users?limit=1") // an HTTP latency series
	require.NoError(t, err)
	resp.Body.Close()

	served := map[string]bool{}
	wait.For(t, 30*time.Second, "the queue depths on /metrics", func() (bool, string) {
		text := scrape(t, base)
		for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`).FindAllStringSubmatch(text, -1) {
			served[m[1]] = true
			if m[2] == "histogram" {
				served[m[1]+"_bucket"], served[m[1]+"_sum"], served[m[1]+"_count"] = true, true, true
			}
		}
		return served["viswals_queue_messages"], "viswals_queue_messages not served yet"
	})
	names := regexp.MustCompile(`\b(?:viswals|process|go)_[a-z0-9_]+\b`)
	for _, f := range []string{"dashboard.json", "alerts.yml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "observability", f))
		require.NoError(t, err)
		found := names.FindAllString(string(b), -1)
		require.NotEmpty(t, found, f)
		for _, n := range found {
			assert.True(t, served[n], "%s reads %s, which the consumer does not serve", f, n)
		}
	}
}

// The consumer prunes the message keys of finished loads once they are
// older than LOAD_MESSAGES_RETENTION; their records stay.
func TestLoadMessagesPruned(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.vars["LOAD_MESSAGES_RETENTION"] = "1s"
	base := e.startConsumer(t)
	path := filepath.Join(t.TempDir(), "users.csv")
	require.NoError(t, os.WriteFile(path, []byte(input), 0o600))
	out := e.produce(t, path, "--wait", "--progress", "none")
	m := regexp.MustCompile(`load=(\d+) state=complete`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	id, err := viswals.ParseLoadID(m[1])
	require.NoError(t, err)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	wait.For(t, 30*time.Second, "the load's message keys pruned", func() (bool, string) {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM load_messages WHERE load_id = $1`, id).Scan(&n); err != nil {
			return false, err.Error()
		}
		return n == 0, fmt.Sprintf("%d keys left", n)
	})
	rec := waitLoad(t, base, id, "the record", func(map[string]any) bool { return true })
	assert.Equal(t, viswals.LoadComplete, rec["state"], "the record stays")
}
