#!/bin/sh
# The broker's command in compose: starts RabbitMQ, then gives the consumer
# and the producer users of their own (passwords RABBITMQ_CONSUMER_PASSWORD
# and RABBITMQ_PRODUCER_PASSWORD), each allowed only the resources of the
# queue VISWALS_QUEUE, its dead-letter queue and exchange, and deletes
# guest (unless VISWALS_KEEP_GUEST=true: the test suite's ports override).
# The health check passes once this is done.
set -eu
q="${VISWALS_QUEUE:-users}"
ready=/tmp/viswals-users-ready
rm -f "$ready"

rabbitmq-server &
server=$!
trap 'rabbitmqctl -q stop; wait "$server"; exit 0' TERM INT
until rabbitmqctl -q await_startup >/dev/null 2>&1; do
  kill -0 "$server" || exit 1
  sleep 1
done

# configure: declare the queue, the dead-letter queue and exchange;
# write: publish (default exchange, dead-letter exchange) and bind;
# read: consume and get (consumer), bind to the exchange (both).
queues="^${q}(\.dlq|\.dlx)?\$"
write="^(amq\.default|${q}(\.dlq|\.dlx)?)\$"
user() { # name password read
  rabbitmqctl -q add_user "$1" "$2" >/dev/null 2>&1 || rabbitmqctl -q change_password "$1" "$2"
  rabbitmqctl -q set_permissions -p / "$1" "$queues" "$write" "$3"
}
user consumer "$RABBITMQ_CONSUMER_PASSWORD" "$queues"
user producer "$RABBITMQ_PRODUCER_PASSWORD" "^${q}\.dlx\$"
if [ "${VISWALS_KEEP_GUEST:-false}" != true ]; then
  rabbitmqctl -q delete_user guest >/dev/null 2>&1 || true
fi
touch "$ready"
wait "$server"
