package producer_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/csvin"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/producer"
	"github.com/viswals/viswals/rabbitmq"
)

// rows yields the given rows, then err (io.EOF when nil).
type rows struct {
	rows []csvin.Row
	err  error
}

func (r *rows) Next() (csvin.Row, error) {
	if len(r.rows) == 0 {
		if r.err != nil {
			return csvin.Row{}, r.err
		}
		return csvin.Row{}, io.EOF
	}
	row := r.rows[0]
	r.rows = r.rows[1:]
	return row, nil
}

// publisher keeps what it is given; publishErr and flushErr make it fail.
type publisher struct {
	mu                   sync.Mutex
	msgs                 []rabbitmq.Message
	flushed              bool
	publishErr, flushErr error
}

func (p *publisher) Publish(_ context.Context, msg rabbitmq.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.publishErr != nil {
		return p.publishErr
	}
	p.msgs = append(p.msgs, msg)
	return nil
}

func (p *publisher) Flush(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushed = true
	return p.flushErr
}

type rejects struct {
	lines []int64
	err   error
}

func (r *rejects) Write(row csvin.Row) error {
	if r.err != nil {
		return r.err
	}
	r.lines = append(r.lines, row.Line)
	return nil
}

type progress struct{ sets []int64 }

func (p *progress) Set(n int64) { p.sets = append(p.sets, n) }

func good(id int64) csvin.Row {
	line := id + 1
	return csvin.Row{Line: line, Record: viswals.Record{
		User:    viswals.User{ID: id, Email: "u@example.com", CreatedAt: time.UnixMilli(0).UTC()},
		Version: viswals.Version{Line: line},
	}}
}

func bad(line int64) csvin.Row {
	return csvin.Row{Line: line, Err: errors.New("bad row"), Fields: []string{"x"}}
}

// decoded returns the ids in each message, checking every message's
// content type and load id on the way.
func decoded(t *testing.T, msgs []rabbitmq.Message, contentType string, loadID int64) [][]int64 {
	t.Helper()
	var ids [][]int64
	for _, m := range msgs {
		require.Equal(t, contentType, m.ContentType)
		recs, err := rabbitmq.Decode(m.ContentType, m.Body)
		require.NoError(t, err)
		var batch []int64
		for _, r := range recs {
			assert.Equal(t, loadID, r.Version.Load, "load id of user %d", r.ID)
			batch = append(batch, r.ID)
		}
		ids = append(ids, batch)
	}
	return ids
}

func TestRun(t *testing.T) {
	t.Parallel()
	const loadID = 42
	tests := []struct {
		name        string
		contentType string
		batch       int
		rows        []csvin.Row
		want        producer.Counts
		wantIDs     [][]int64
		wantRejects []int64
	}{
		{name: "batches good rows, rejects bad ones", contentType: rabbitmq.ContentTypeGob, batch: 2,
			rows:        []csvin.Row{good(1), bad(3), good(3), good(4), bad(6), good(6), good(7)},
			want:        producer.Counts{Read: 7, Published: 5, Rejected: 2, Messages: 3},
			wantIDs:     [][]int64{{1, 3}, {4, 6}, {7}},
			wantRejects: []int64{3, 6}},
		{name: "json", contentType: rabbitmq.ContentTypeJSON, batch: 2,
			rows:    []csvin.Row{good(1), good(2), good(3), good(4)},
			want:    producer.Counts{Read: 4, Published: 4, Messages: 2},
			wantIDs: [][]int64{{1, 2}, {3, 4}}},
		{name: "one user per message", contentType: rabbitmq.ContentTypeGob, batch: 1,
			rows:    []csvin.Row{good(1), good(2)},
			want:    producer.Counts{Read: 2, Published: 2, Messages: 2},
			wantIDs: [][]int64{{1}, {2}}},
		{name: "only rejects", contentType: rabbitmq.ContentTypeGob, batch: 10,
			rows:        []csvin.Row{bad(2), bad(3)},
			want:        producer.Counts{Read: 2, Rejected: 2},
			wantRejects: []int64{2, 3}},
		{name: "empty input", contentType: rabbitmq.ContentTypeGob, batch: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pub, rej, prog := &publisher{}, &rejects{}, &progress{}
			p := producer.New(&rows{rows: tt.rows}, pub, rej, prog,
				producer.Options{ContentType: tt.contentType, BatchSize: tt.batch, LoadID: loadID})
			n, err := p.Run(context.Background())
			require.NoError(t, err)
			assert.Equal(t, tt.want, n)
			require.NotEmpty(t, pub.msgs)
			batches, last := pub.msgs[:len(pub.msgs)-1], pub.msgs[len(pub.msgs)-1]
			assert.Equal(t, tt.wantIDs, decoded(t, batches, tt.contentType, loadID))
			assert.Equal(t, rabbitmq.SummaryMessage(viswals.LoadSummary{Load: loadID, Read: tt.want.Read,
				Published: tt.want.Published, Rejected: tt.want.Rejected}), last, "the last message is the load's summary")
			for i, m := range batches {
				assert.Equal(t, rabbitmq.BatchHeaders(loadID, len(tt.wantIDs[i])), m.Headers)
				assert.Equal(t, fmt.Sprintf("%d-%d", loadID, i+1), m.MessageID, "message ids are stable, for the consumer's count")
			}
			assert.Equal(t, tt.wantRejects, rej.lines)
			assert.True(t, pub.flushed, "Run must wait for the broker's confirms")
			assert.Equal(t, []int64{tt.want.Read}, prog.sets)
		})
	}
}

func TestRunFails(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	many := make([]csvin.Row, 100)
	for i := range many {
		many[i] = good(int64(i + 1))
	}
	tests := []struct {
		name    string
		rows    *rows
		pub     *publisher
		rejects *rejects
		want    string
	}{
		{name: "read", rows: &rows{rows: []csvin.Row{good(1)}, err: boom}, pub: &publisher{}, rejects: &rejects{},
			want: "read input: boom"},
		{name: "write a reject", rows: &rows{rows: []csvin.Row{bad(2)}}, pub: &publisher{}, rejects: &rejects{err: boom},
			want: "write rejects: boom"},
		// Many rows, so the reader is blocked on a full channel when
		// publishing fails: it must stop rather than hang.
		{name: "publish", rows: &rows{rows: many}, pub: &publisher{publishErr: boom}, rejects: &rejects{},
			want: "publish: boom"},
		{name: "confirms", rows: &rows{rows: []csvin.Row{good(1)}}, pub: &publisher{flushErr: boom}, rejects: &rejects{},
			want: "wait for broker confirms: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := producer.New(tt.rows, tt.pub, tt.rejects, &progress{},
				producer.Options{ContentType: rabbitmq.ContentTypeGob, BatchSize: 1})
			_, err := p.Run(context.Background())
			require.ErrorIs(t, err, boom)
			assert.EqualError(t, err, tt.want)
		})
	}
}

func TestRunReportsProgressEvery4096Rows(t *testing.T) {
	t.Parallel()
	in := make([]csvin.Row, 2*4096+1)
	for i := range in {
		in[i] = bad(int64(i + 2))
	}
	prog := &progress{}
	p := producer.New(&rows{rows: in}, &publisher{}, &rejects{}, prog,
		producer.Options{ContentType: rabbitmq.ContentTypeGob, BatchSize: 10})
	_, err := p.Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []int64{4096, 8192, 8193}, prog.sets)
}

func TestMeter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, mode string
		size       int64
		want, not  []string
	}{
		{"none is silent", producer.ProgressNone, 1000, nil, []string{"loading", "committed"}},
		{"plain, file", producer.ProgressPlain, 1000, []string{"loading: 50.0% rows=10 rows_per_second=", "eta=", "committed: 5/10 rows (slow)\n"}, nil},
		{"plain, stdin: no percent", producer.ProgressPlain, -1, []string{"loading: rows=10 rows_per_second="}, []string{"%", "eta"}},
		{"auto off a terminal is plain", producer.ProgressAuto, 1000, []string{"loading: 50.0%"}, nil},
		{"bar, file", producer.ProgressBar, 1000, []string{"loading 10 rows (", "rows/s)", "0% |", "committed (slow)"}, nil},
		{"bar, stdin: a spinner", producer.ProgressBar, -1, []string{"loading (10/-", "rows/s"}, []string{"loading 10 rows"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out strings.Builder
			in := producer.NewCountingReader(strings.NewReader(strings.Repeat("x", 500)))
			_, err := io.ReadAll(in)
			require.NoError(t, err)
			m := producer.NewMeter(&out, tc.mode, tc.size, in)
			m.Set(10)
			m.Loaded()
			m.Committed(5, 10, "slow")
			m.Finish()
			for _, w := range tc.want {
				assert.Contains(t, out.String(), w)
			}
			for _, n := range tc.not {
				assert.NotContains(t, out.String(), n)
			}
		})
	}
}

// discard is a publisher that confirms everything at once.
type discard struct{}

func (discard) Publish(context.Context, rabbitmq.Message) error { return nil }
func (discard) Flush(context.Context) error                     { return nil }

// BenchmarkRun measures the producer's own work (batching, encoding and,
// with --seal, sealing every email) on 100,000 rows, without a broker:
// plain is the yardstick of sealed.
func BenchmarkRun(b *testing.B) {
	const n = 100_000
	input := make([]csvin.Row, n)
	for i := range input {
		input[i] = good(int64(i + 1))
		input[i].Record.Email = fmt.Sprintf("user%d@example.com", i+1)
	}
	key := make([]byte, emailcrypt.KeySize)
	_, _ = rand.Read(key)
	keyring, err := emailcrypt.New(key)
	require.NoError(b, err)
	for _, bc := range []struct {
		name   string
		sealer producer.Sealer
		ct     string
	}{
		{"plain", nil, rabbitmq.ContentTypeGob},
		{"sealed", keyring, rabbitmq.WithSealedEmails(rabbitmq.ContentTypeGob)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p := producer.New(&rows{rows: slices.Clone(input)}, discard{}, &rejects{}, &progress{},
					producer.Options{ContentType: bc.ct, BatchSize: 2000, LoadID: 1, Sealer: bc.sealer})
				if _, err := p.Run(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
