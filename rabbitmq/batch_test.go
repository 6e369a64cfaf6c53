package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/rabbitmq"
)

// fakeIngester refuses the records whose email has no '@' and fails with
// err when it is set. It is pure logic: the real ingester is tested in its
// own package and end to end.
type fakeIngester struct {
	err         error
	got         []viswals.Record
	redelivered bool
	receipt     *viswals.Receipt
	summaries   []viswals.LoadSummary
}

func (f *fakeIngester) IngestSealed(ctx context.Context, recs []viswals.Record, redelivered bool, rc *viswals.Receipt) ([]viswals.Refusal, error) {
	return f.IngestCounted(ctx, recs, redelivered, rc)
}

func (f *fakeIngester) RecordSummary(_ context.Context, sum viswals.LoadSummary) error {
	if f.err != nil {
		return f.err
	}
	f.summaries = append(f.summaries, sum)
	return nil
}

func (f *fakeIngester) IngestCounted(_ context.Context, recs []viswals.Record, redelivered bool, rc *viswals.Receipt) ([]viswals.Refusal, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.got, f.redelivered, f.receipt = recs, redelivered, rc
	var refused []viswals.Refusal
	for i, r := range recs {
		if !strings.Contains(r.Email, "@") {
			refused = append(refused, viswals.Refusal{Index: i, Reason: "email_address must have one '@'"})
		}
	}
	return refused, nil
}

func user(id int64, email string) viswals.Record {
	parent := id + 100
	deleted := time.UnixMilli(1_700_000_000_000 + id).UTC()
	return viswals.Record{
		User: viswals.User{ID: id, FirstName: fmt.Sprint("First", id), LastName: "Last, Jr.", Email: email,
			CreatedAt: time.UnixMilli(1_600_000_000_000 + id).UTC(), DeletedAt: &deleted, ParentUserID: &parent},
		Version: viswals.Version{Load: 42, Line: id + 1},
	}
}

func TestBatchHandler(t *testing.T) {
	t.Parallel()
	encode := func(ct string, recs ...viswals.Record) []byte {
		b, err := rabbitmq.Encode(ct, recs)
		require.NoError(t, err)
		return b
	}
	tests := []struct {
		name        string
		contentType string
		body        []byte
		err         error
		want        rabbitmq.Outcome
		wantRefused []viswals.Record // the records of the dead-letter parts, in order
	}{
		{name: "good batch acked", contentType: rabbitmq.ContentTypeGob,
			body: encode(rabbitmq.ContentTypeGob, user(1, "a@b"), user(2, "c@d")), want: rabbitmq.Ack{}},
		{name: "garbage dead-lettered as it is", contentType: rabbitmq.ContentTypeGob,
			body: []byte("garbage"), want: rabbitmq.DeadLetter{}},
		{name: "unknown content type dead-lettered as it is", contentType: "text/plain",
			body: []byte("1,2,3"), want: rabbitmq.DeadLetter{}},
		{name: "ingester unavailable: requeued", contentType: rabbitmq.ContentTypeGob,
			body: encode(rabbitmq.ContentTypeGob, user(1, "a@b")), err: errors.New("postgres down"), want: rabbitmq.Requeue{}},
		{name: "gob: refused users dead-lettered whole", contentType: rabbitmq.ContentTypeGob,
			body: encode(rabbitmq.ContentTypeGob, user(1, "a@b"), user(2, "bad"), user(3, "e@f"), user(4, "worse")),
			want: rabbitmq.DeadLetterParts{}, wantRefused: []viswals.Record{user(2, "bad"), user(4, "worse")}},
		{name: "json: refused users dead-lettered whole", contentType: rabbitmq.ContentTypeJSON,
			body: encode(rabbitmq.ContentTypeJSON, user(1, "bad"), user(2, "c@d")),
			want: rabbitmq.DeadLetterParts{}, wantRefused: []viswals.Record{user(1, "bad")}},
		{name: "all refused: dead-lettered whole", contentType: rabbitmq.ContentTypeJSON,
			body: encode(rabbitmq.ContentTypeJSON, user(1, "bad")),
			want: rabbitmq.DeadLetterParts{}, wantRefused: []viswals.Record{user(1, "bad")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := rabbitmq.BatchHandler(&fakeIngester{err: tt.err}, nil)
			got := h(context.Background(), rabbitmq.Delivery{ContentType: tt.contentType, Body: tt.body})
			require.IsType(t, tt.want, got)
			switch o := got.(type) {
			case rabbitmq.DeadLetter:
				assert.NotEmpty(t, o.Reason)
			case rabbitmq.DeadLetterParts:
				var recs []viswals.Record
				for _, p := range o.Parts {
					part, err := rabbitmq.Decode(tt.contentType, p.Body)
					require.NoError(t, err, "a dead letter is in the delivery's own content type")
					require.Len(t, p.Reasons, len(part), "one reason per record")
					for i, r := range part {
						assert.Contains(t, p.Reasons[i], fmt.Sprintf("id %d (line %d): email_address", r.ID, r.Version.Line))
					}
					assert.NotEmpty(t, p.Reason)
					recs = append(recs, part...)
				}
				assert.Equal(t, tt.wantRefused, recs, "every field and the version, as it arrived")
			}
		})
	}
}

// Many refusals are spread over several dead letters so that the reasons
// of each fit in its headers; none is left out.
func TestBatchHandlerSplitsManyRefusals(t *testing.T) {
	t.Parallel()
	var recs []viswals.Record
	for i := range int64(3000) {
		recs = append(recs, user(i+1, "bad"+strings.Repeat("x", 200)))
	}
	body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, recs)
	require.NoError(t, err)
	got := rabbitmq.BatchHandler(&fakeIngester{}, nil)(context.Background(), rabbitmq.Delivery{ContentType: rabbitmq.ContentTypeGob, Body: body})
	parts := got.(rabbitmq.DeadLetterParts).Parts
	require.Greater(t, len(parts), 1)
	var all []viswals.Record
	for _, p := range parts {
		size := 0
		for _, r := range p.Reasons {
			size += len(r)
		}
		assert.LessOrEqual(t, size, 32<<10)
		part, err := rabbitmq.Decode(rabbitmq.ContentTypeGob, p.Body)
		require.NoError(t, err)
		require.Len(t, p.Reasons, len(part))
		all = append(all, part...)
	}
	assert.Equal(t, recs, all)
}

// A redelivered message is passed on as such: the ingester then refreshes
// the cache entries of users it did not change.
func TestBatchHandlerPassesRedelivered(t *testing.T) {
	t.Parallel()
	body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, []viswals.Record{user(1, "a@b")})
	require.NoError(t, err)
	in := &fakeIngester{}
	rabbitmq.BatchHandler(in, nil)(context.Background(), rabbitmq.Delivery{ContentType: rabbitmq.ContentTypeGob, Body: body, Redelivered: true})
	assert.True(t, in.redelivered)
}

func TestAssignVersions(t *testing.T) {
	t.Parallel()
	recs := []viswals.Record{{}, {Version: viswals.Version{Load: 5, Line: 9}}, {}}
	now := time.Unix(100, 0)
	rabbitmq.AssignVersions(recs, now)
	assert.Equal(t, viswals.Version{Load: now.UnixNano(), Line: 1}, recs[0].Version)
	assert.Equal(t, viswals.Version{Load: 5, Line: 9}, recs[1].Version, "a version sent by the producer is kept")
	assert.Equal(t, viswals.Version{Load: now.UnixNano(), Line: 3}, recs[2].Version)
}

// A load's batches are counted under their load and message id (a hash of
// the body without one), and its summary is recorded; a malformed summary
// is dead-lettered.
func TestBatchHandlerLoads(t *testing.T) {
	t.Parallel()
	body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, []viswals.Record{user(1, "a@x")})
	require.NoError(t, err)
	in := &fakeIngester{}
	h := rabbitmq.BatchHandler(in, nil)
	ctx := context.Background()

	require.IsType(t, rabbitmq.Ack{}, h(ctx, rabbitmq.Delivery{ContentType: rabbitmq.ContentTypeGob, Body: body}))
	assert.Nil(t, in.receipt, "a message that names no load is counted in none")

	require.IsType(t, rabbitmq.Ack{}, h(ctx, rabbitmq.Delivery{ContentType: rabbitmq.ContentTypeGob, Body: body,
		Headers: rabbitmq.BatchHeaders(42, 1), MessageID: "42-1"}))
	assert.Equal(t, &viswals.Receipt{Load: 42, Message: "42-1"}, in.receipt)

	require.IsType(t, rabbitmq.Ack{}, h(ctx, rabbitmq.Delivery{ContentType: rabbitmq.ContentTypeGob, Body: body,
		Headers: amqp.Table{rabbitmq.HeaderLoad: "42"}}))
	require.NotNil(t, in.receipt)
	assert.Equal(t, int64(42), in.receipt.Load)
	assert.True(t, strings.HasPrefix(in.receipt.Message, "sha256:"), in.receipt.Message)

	sum := viswals.LoadSummary{Load: 42, Read: 10, Published: 8, Rejected: 2}
	m := rabbitmq.SummaryMessage(sum)
	d := rabbitmq.Delivery{ContentType: m.ContentType, Body: m.Body, Headers: m.Headers, MessageID: m.MessageID}
	require.IsType(t, rabbitmq.Ack{}, h(ctx, d))
	assert.Equal(t, []viswals.LoadSummary{sum}, in.summaries)

	for name, bad := range map[string]rabbitmq.Delivery{
		"not JSON":        {Body: []byte("{"), Headers: m.Headers},
		"another load":    {Body: m.Body, Headers: amqp.Table{rabbitmq.HeaderLoad: int64(43), rabbitmq.HeaderKind: rabbitmq.KindLoadSummary}},
		"counts disagree": {Body: []byte(`{"load":42,"read":1,"published":5,"rejected":0}`), Headers: m.Headers},
		"negative counts": {Body: []byte(`{"load":42,"read":-1,"published":-1,"rejected":0}`), Headers: m.Headers},
		"no load header":  {Body: m.Body, Headers: amqp.Table{rabbitmq.HeaderKind: rabbitmq.KindLoadSummary}},
		"huge":            {Body: []byte(`{"load":42` + strings.Repeat(" ", 5000) + `}`), Headers: m.Headers},
	} {
		got := h(ctx, bad)
		if _, ok := got.(rabbitmq.DeadLetter); !ok {
			t.Errorf("%s: %T, want a dead letter", name, got)
		}
	}
	in.err = viswals.Errorf(viswals.EUNAVAILABLE, "postgres down")
	require.IsType(t, rabbitmq.Requeue{}, h(ctx, d), "a summary that cannot be recorded now is requeued")
}

// Dead letters whose rows were counted in their load carry the key their
// replay is counted under (and their number of rows); a replayed one is
// counted under it; an undecodable message that names its load and rows
// is counted as that many dead-lettered rows.
func TestBatchHandlerCountsDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, []viswals.Record{user(1, "a@x"), user(2, "no-at"), user(3, "also-no-at")})
	require.NoError(t, err)
	in := &fakeIngester{}
	h := rabbitmq.BatchHandler(in, nil)

	out := h(ctx, rabbitmq.Delivery{ContentType: rabbitmq.ContentTypeGob, Body: body, Headers: rabbitmq.BatchHeaders(42, 3), MessageID: "42-1"})
	parts := out.(rabbitmq.DeadLetterParts).Parts
	require.Len(t, parts, 1)
	key, _ := parts[0].Headers[rabbitmq.HeaderDeadLetterKey].(string)
	assert.Regexp(t, `^dl:[0-9a-f]{32}$`, key)
	assert.Equal(t, int64(2), parts[0].Headers[rabbitmq.HeaderRows])
	again := h(ctx, rabbitmq.Delivery{ContentType: rabbitmq.ContentTypeGob, Body: body, Headers: rabbitmq.BatchHeaders(42, 3), MessageID: "42-1", Redelivered: true})
	assert.Equal(t, key, again.(rabbitmq.DeadLetterParts).Parts[0].Headers[rabbitmq.HeaderDeadLetterKey], "the same for every delivery")

	// The dead letter, replayed: its headers are the delivery's and the part's.
	replayed := amqp.Table{rabbitmq.HeaderLoad: int64(42), rabbitmq.HeaderRows: int64(2), rabbitmq.HeaderDeadLetterKey: key}
	out = h(ctx, rabbitmq.Delivery{ContentType: rabbitmq.ContentTypeGob, Body: parts[0].Body, Headers: replayed, MessageID: "42-1"})
	assert.Equal(t, &viswals.Receipt{Load: 42, Message: key, Replayed: true}, in.receipt)
	next := out.(rabbitmq.DeadLetterParts).Parts[0].Headers[rabbitmq.HeaderDeadLetterKey]
	assert.NotEqual(t, key, next, "refused again: a new dead letter, replayed under a key of its own")

	t.Run("undecodable", func(t *testing.T) {
		t.Parallel()
		in := &fakeIngester{}
		h := rabbitmq.BatchHandler(in, nil)
		out := h(ctx, rabbitmq.Delivery{ContentType: rabbitmq.ContentTypeJSON, Body: []byte("[{"), Headers: rabbitmq.BatchHeaders(42, 3), MessageID: "42-2"})
		dl := out.(rabbitmq.DeadLetter)
		assert.Contains(t, dl.Reason, "decode")
		assert.Regexp(t, `^dl:`, dl.Headers[rabbitmq.HeaderDeadLetterKey])
		assert.Equal(t, &viswals.Receipt{Load: 42, Message: "42-2", Refused: 3}, in.receipt)
		assert.Empty(t, in.got)

		in.receipt = nil
		out = h(ctx, rabbitmq.Delivery{ContentType: rabbitmq.ContentTypeJSON, Body: []byte("[{"), Headers: amqp.Table{rabbitmq.HeaderLoad: int64(42)}})
		assert.Nil(t, out.(rabbitmq.DeadLetter).Headers, "without its number of rows nothing is counted")
		assert.Nil(t, in.receipt)

		h = rabbitmq.BatchHandler(&fakeIngester{err: viswals.Errorf(viswals.EUNAVAILABLE, "down")}, nil)
		out = h(ctx, rabbitmq.Delivery{ContentType: rabbitmq.ContentTypeJSON, Body: []byte("[{"), Headers: rabbitmq.BatchHeaders(42, 3)})
		assert.IsType(t, rabbitmq.Requeue{}, out, "uncounted: handed back")
	})
}
