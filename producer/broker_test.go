package producer_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/csvin"
	"github.com/viswals/viswals/producer"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rabbitmq/rmqtest"
)

const header = "id,first_name,last_name,email_address,created_at,deleted_at,merged_at,parent_user_id\n"

// TestRunWithBroker runs the producer against a real broker: when Run
// returns, every message is confirmed, persistent and on the queue.
func TestRunWithBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("needs RabbitMQ")
	}
	t.Parallel()
	for _, contentType := range []string{rabbitmq.ContentTypeGob, rabbitmq.ContentTypeJSON} {
		t.Run(contentType, func(t *testing.T) {
			t.Parallel()
			url, queue := rmqtest.NewQueue(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			pub, err := rabbitmq.NewPublisher(ctx, url, queue, rabbitmq.PublisherOptions{})
			require.NoError(t, err)
			defer pub.Close()

			in, err := csvin.NewReader(strings.NewReader(header +
				"1,Ann,Lee,ann@example.com,1600000000000,-1,-1,-1\n" +
				"2,Bad,Email,nope,1600000000000,-1,-1,-1\n" +
				"3,Cy,Doe,cy@example.com,1600000000000,,,\n" +
				"4,Short\n" +
				"5,Di,Fox,di@example.com,1600000000000,-1,-1,-1\n"))
			require.NoError(t, err)
			var rejectsOut bytes.Buffer
			rejects := csvin.NewRejectWriter(&rejectsOut, in.Header())

			const loadID = 7
			n, err := producer.New(in, pub, rejects, &progress{},
				producer.Options{ContentType: contentType, BatchSize: 2, LoadID: loadID}).Run(ctx)
			require.NoError(t, err)
			assert.Equal(t, producer.Counts{Read: 5, Published: 3, Rejected: 2, Messages: 2}, n)
			require.NoError(t, rejects.Flush())
			assert.Equal(t, 3, strings.Count(rejectsOut.String(), "\n"), rejectsOut.String())

			var msgs []rabbitmq.Message
			for range 2 {
				d, ok := rmqtest.Get(t, url, queue)
				require.True(t, ok, "message missing from queue")
				assert.Equal(t, uint8(2), d.DeliveryMode, "persistent")
				msgs = append(msgs, rabbitmq.Message{Body: d.Body, ContentType: d.ContentType})
			}
			assert.Equal(t, [][]int64{{1, 3}, {5}}, decoded(t, msgs, contentType, loadID))
		})
	}
}
