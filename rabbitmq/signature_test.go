package rabbitmq_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/wait"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rabbitmq/rmqtest"
)

const (
	testSigningKey  = "pR0x8w1vJ6kz9Qe2Lb4nT7sYc3Hm5Ud+Fa0Gi8Ko1Wq="
	otherSigningKey = "Zt6Yq2Wn8Xr4Lp0Mv9Ks3Jd7Hc1Fb5Ng+Re2Ta6Ue8Ii="
)

func newSigner(t testing.TB, key string) *rabbitmq.Signer {
	t.Helper()
	s, err := rabbitmq.NewSigner(key)
	require.NoError(t, err)
	return s
}

func TestSignerVerify(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testSigningKey)
	body := []byte("a batch")
	good := s.Sign(rabbitmq.ContentTypeGob, body)
	tests := []struct {
		name        string
		header      any
		contentType string
		body        []byte
		wantErr     string // "" for a valid signature
	}{
		{name: "valid", header: good, contentType: rabbitmq.ContentTypeGob, body: body},
		{name: "valid, hex in upper case", header: "v1=" + strings.ToUpper(strings.TrimPrefix(good, "v1=")), contentType: rabbitmq.ContentTypeGob, body: body},
		{name: "unsigned", header: nil, contentType: rabbitmq.ContentTypeGob, body: body, wantErr: "unsigned: no x-signature header"},
		{name: "signed with another key", header: newSigner(t, otherSigningKey).Sign(rabbitmq.ContentTypeGob, body), contentType: rabbitmq.ContentTypeGob, body: body, wantErr: "does not match"},
		{name: "body altered", header: good, contentType: rabbitmq.ContentTypeGob, body: []byte("a batcH"), wantErr: "does not match"},
		{name: "content type relabelled", header: good, contentType: rabbitmq.ContentTypeJSON, body: body, wantErr: "does not match"},
		{name: "content type and body shifted", header: s.Sign(rabbitmq.ContentTypeGob+"a", []byte(" batch")), contentType: rabbitmq.ContentTypeGob, body: body, wantErr: "does not match"},
		{name: "not a string", header: []byte(good), contentType: rabbitmq.ContentTypeGob, body: body, wantErr: "is a []uint8, not a string"},
		{name: "unknown scheme", header: "v2=" + strings.TrimPrefix(good, "v1="), contentType: rabbitmq.ContentTypeGob, body: body, wantErr: `unknown scheme "v2"`},
		{name: "no scheme", header: strings.TrimPrefix(good, "v1="), contentType: rabbitmq.ContentTypeGob, body: body, wantErr: "is not v1=<hex>"},
		{name: "truncated", header: good[:20], contentType: rabbitmq.ContentTypeGob, body: body, wantErr: "want 64 hex digits"},
		{name: "not hex", header: "v1=" + strings.Repeat("zz", 32), contentType: rabbitmq.ContentTypeGob, body: body, wantErr: "is not hex"},
		{name: "empty", header: "", contentType: rabbitmq.ContentTypeGob, body: body, wantErr: "is not v1=<hex>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := s.Verify(tt.header, tt.contentType, tt.body)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
		})
	}
}

func TestNewSignerRefusesBadKeys(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, key, want string }{
		{"empty", "", "is 0 bytes, want at least 32"},
		{"short", "c2hvcnQga2V5IG9mIDI0IGJ5dGVz", "is 28 bytes, want at least 32"},
		{"repeated", strings.Repeat("ab", 20), "weak: only 2 distinct characters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := rabbitmq.NewSigner(tt.key)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), "openssl rand -base64 32", "says how to make a key")
			if tt.key != "" {
				assert.NotContains(t, err.Error(), tt.key, "never shows the key")
			}
		})
	}
}

func FuzzParseSignature(f *testing.F) {
	s := newSigner(f, testSigningKey)
	f.Add(s.Sign(rabbitmq.ContentTypeGob, []byte("x")))
	f.Add("v1=")
	f.Add("v2=00")
	f.Add("=")
	f.Add("v1=" + strings.Repeat("0", 63) + "g")
	f.Fuzz(func(t *testing.T, v string) {
		sum, err := rabbitmq.ParseSignature(v)
		if err != nil {
			assert.Nil(t, sum)
			assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
			assert.Less(t, len(err.Error()), 200, "errors do not echo long values")
			return
		}
		require.Len(t, sum, 32)
		assert.True(t, strings.EqualFold("v1="+hex.EncodeToString(sum), v), "only v1=<64 hex digits> parses")
	})
}

// syncIngester records the ids it is given and refuses users whose email
// has no '@'. Safe for the consumer's concurrent workers.
type syncIngester struct {
	mu  sync.Mutex
	ids map[int64]int
}

func (s *syncIngester) IngestSealed(ctx context.Context, recs []viswals.Record, redelivered bool, rc *viswals.Receipt) ([]viswals.Refusal, error) {
	return s.IngestCounted(ctx, recs, redelivered, rc)
}

func (s *syncIngester) RecordSummary(context.Context, viswals.LoadSummary) error { return nil }

func (s *syncIngester) IngestCounted(_ context.Context, recs []viswals.Record, _ bool, _ *viswals.Receipt) ([]viswals.Refusal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var refused []viswals.Refusal
	for i, r := range recs {
		s.ids[r.ID]++
		if !strings.Contains(r.Email, "@") {
			refused = append(refused, viswals.Refusal{Index: i, Reason: "email_address must have one '@'"})
		}
	}
	return refused, nil
}

func (s *syncIngester) seen(id int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id]
}

// With a signing key, the consumer passes on only messages signed with
// it; unsigned and forged ones go to the dead-letter queue undecoded, with
// the reason. Refused users of a signed message are dead-lettered with a
// signature of their own, so that a replay of them is accepted, while a
// replay of the unsigned and forged ones is dead-lettered again.
func TestSignedMessagesThroughBroker(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	signer := newSigner(t, testSigningKey)
	ctx := context.Background()

	pub, err := rabbitmq.NewPublisher(ctx, url, queue, rabbitmq.PublisherOptions{Signer: signer, Logger: testLogger(t)})
	require.NoError(t, err)
	defer pub.Close()
	publish := func(recs ...viswals.Record) {
		body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, recs)
		require.NoError(t, err)
		require.NoError(t, pub.Publish(ctx, rabbitmq.Message{Body: body, ContentType: rabbitmq.ContentTypeGob}))
	}
	publish(user(1, "a@b"), user(2, "refused"))

	unsigned, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, []viswals.Record{user(3, "c@d")})
	require.NoError(t, err)
	rmqtest.Publish(t, url, queue,
		amqp.Publishing{ContentType: rabbitmq.ContentTypeGob, Body: unsigned, MessageId: "unsigned"},
		amqp.Publishing{ContentType: rabbitmq.ContentTypeGob, Body: unsigned, MessageId: "forged",
			Headers: amqp.Table{rabbitmq.HeaderSignature: newSigner(t, otherSigningKey).Sign(rabbitmq.ContentTypeGob, unsigned)}},
		// Not even a gob stream: it must not reach the decoder.
		amqp.Publishing{ContentType: rabbitmq.ContentTypeGob, Body: []byte("garbage"), MessageId: "garbage",
			Headers: amqp.Table{rabbitmq.HeaderSignature: "v1=" + strings.Repeat("00", 32)}},
	)
	require.NoError(t, pub.Flush(ctx))

	in := &syncIngester{ids: map[int64]int{}}
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{})
	stop := runConsumer(t, c, rabbitmq.Verified(signer, rabbitmq.BatchHandler(in, testLogger(t)), testLogger(t), nil))
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 4, waitTimeout)
	require.NoError(t, stop())
	assert.Equal(t, 1, in.seen(1), "the signed message was ingested")
	assert.Zero(t, in.seen(3), "unsigned and forged messages never reach the ingester")

	reasons := map[string]string{}
	require.NoError(t, rabbitmq.ListDeadLetters(ctx, url, queue, 0, func(m rabbitmq.DLQMessage) error {
		id := m.MessageID
		if id == "" {
			id = "part"
			assert.Contains(t, m.Headers[rabbitmq.HeaderSignature], "v1=", "signed anew (checked by the replay below)")
		}
		reasons[id] = m.Reason
		return nil
	}))
	assert.Contains(t, reasons["unsigned"], "unsigned: no x-signature header")
	assert.Contains(t, reasons["forged"], "bad signature")
	assert.Contains(t, reasons["garbage"], "bad signature")
	assert.Contains(t, reasons["part"], "1 of 2 users refused")

	// Replay: the part is accepted (user 2 reaches the ingester again and
	// is refused again); the others fail their check again.
	n, err := rabbitmq.ReplayDeadLetters(ctx, url, queue, rabbitmq.Topology{}, 0)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	stop = runConsumer(t, newConsumer(t, url, queue, rabbitmq.ConsumerOptions{}),
		rabbitmq.Verified(signer, rabbitmq.BatchHandler(in, testLogger(t)), testLogger(t), nil))
	wait.For(t, waitTimeout, "the replayed part to reach the ingester", func() (bool, string) {
		return in.seen(2) == 2, fmt.Sprintf("user 2 seen %d times", in.seen(2))
	})
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 4, waitTimeout)
	require.NoError(t, stop())
	assert.Zero(t, in.seen(3), "a replay does not launder an unsigned or forged message")
}
