package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rabbitmq/rmqtest"
)

// The consumer does not trust the broker: with INGEST_SIGNING_KEY it
// takes only messages the producer signed, and it refuses versions from
// the future, whoever signed them.

const testSigningKey = "pR0x8w1vJ6kz9Qe2Lb4nT7sYc3Hm5Ud+Fa0Gi8Ko1Wq="

// deadLetters returns the reasons of the dead letters of e's queue, by
// message id ("" for the consumer's own parts).
func deadLetters(t *testing.T, e *testEnv) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	require.NoError(t, rabbitmq.ListDeadLetters(context.Background(), e.rabbit, e.queue, 0, func(m rabbitmq.DLQMessage) error {
		got[m.MessageID] = append(got[m.MessageID], m.Reason)
		return nil
	}))
	return got
}

func TestSignedLoad(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.vars["INGEST_SIGNING_KEY"] = testSigningKey
	base := e.startConsumer(t)
	path := filepath.Join(t.TempDir(), "users.csv")
	require.NoError(t, os.WriteFile(path, []byte(input), 0o600))

	assert.Contains(t, e.produce(t, path), "published=6")
	waitIngested(t, base, "the signed load", 6)

	signer, err := rabbitmq.NewSigner(testSigningKey)
	require.NoError(t, err)
	future := viswals.Record{
		User:    viswals.User{ID: 1, FirstName: "PINNED", Email: "pinned@example.com", CreatedAt: time.UnixMilli(1).UTC()},
		Version: viswals.Version{Load: math.MaxInt64, Line: 1},
	}
	good := viswals.Record{User: viswals.User{ID: 77, FirstName: "Good", Email: "good@example.com", CreatedAt: time.UnixMilli(1).UTC()}, Version: viswals.Version{Load: 1, Line: 1}}
	signed, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, []viswals.Record{future, good})
	require.NoError(t, err)
	unsigned, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, []viswals.Record{{User: viswals.User{ID: 78, Email: "x@example.com", CreatedAt: time.UnixMilli(1).UTC()}}})
	require.NoError(t, err)
	rmqtest.Publish(t, e.rabbit, e.queue,
		amqp.Publishing{ContentType: rabbitmq.ContentTypeGob, Body: unsigned, MessageId: "unsigned"},
		amqp.Publishing{ContentType: rabbitmq.ContentTypeGob, Body: unsigned, MessageId: "forged",
			Headers: amqp.Table{rabbitmq.HeaderSignature: signer.Sign(rabbitmq.ContentTypeJSON, unsigned)}},
		amqp.Publishing{ContentType: rabbitmq.ContentTypeGob, Body: signed, MessageId: "future",
			Headers: amqp.Table{rabbitmq.HeaderSignature: signer.Sign(rabbitmq.ContentTypeGob, signed)}},
	)
	waitIngested(t, base, "the good user of the signed batch", 7)
	rmqtest.WaitMessages(t, e.rabbit, rabbitmq.DLQName(e.queue), 3, 30*time.Second)

	dl := deadLetters(t, e)
	require.Len(t, dl["unsigned"], 1)
	assert.Contains(t, dl["unsigned"][0], "unsigned: no x-signature header")
	require.Len(t, dl["forged"], 1)
	assert.Contains(t, dl["forged"][0], "bad signature")
	require.Len(t, dl["future"], 1, "the refused user, in a message of its own")
	assert.Contains(t, dl["future"][0], "1 of 2 users refused: id 1 (line 1): version load 2262-04-11T23:47:16Z is")

	table := readTable(t, e)
	assert.Equal(t, want()[1], normalise(table[1].user), "user 1 is not pinned by the future version")
	assert.Less(t, table[1].versionLoad, int64(math.MaxInt64))
	assert.Contains(t, table, int64(77))
	assert.NotContains(t, table, int64(78))
}

// producer --seal: the broker holds only sealed emails; the consumer
// stores them as they came, once they open, and serves the right ones. A
// producer sealing with other keys has its users refused, with the reason.
func TestSealedLoad(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.vars["INGEST_SIGNING_KEY"] = testSigningKey
	base := e.startConsumer(t)
	path := filepath.Join(t.TempDir(), "users.csv")
	require.NoError(t, os.WriteFile(path, []byte(input), 0o600))

	assert.Contains(t, e.produce(t, path, "--seal"), "published=6")
	waitIngested(t, base, "the sealed load", 6)
	table := readTable(t, e) // opens every email with the consumer's keys
	for id, w := range want() {
		assert.Equal(t, w, normalise(table[id].user), "user %d", id)
	}
	resp, err := http.Get(base + "/users/3")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `"email_address":"zoe@example.com"`)

	// Another key: every user refused, none stored over the good ones.
	other := map[string]string{}
	maps.Copy(other, e.vars)
	otherKey := make([]byte, 32)
	_, err = rand.Read(otherKey)
	require.NoError(t, err)
	other["ENCRYPTION_KEY"] = base64.StdEncoding.EncodeToString(otherKey)
	saved := e.vars
	e.vars = other
	e.produce(t, path, "--seal")
	e.vars = saved
	rmqtest.WaitMessages(t, e.rabbit, rabbitmq.DLQName(e.queue), 1, 30*time.Second)
	// One message, under the producer's own message id.
	dl := deadLetters(t, e)
	require.Len(t, dl, 1)
	for _, reasons := range dl {
		require.Len(t, reasons, 1)
		assert.Contains(t, reasons[0], "6 of 6 users refused")
		assert.Contains(t, reasons[0], "email_address is sealed but does not open")
	}
	assert.Equal(t, table, readTable(t, e))
}
