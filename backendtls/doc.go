// Package backendtls tests the service against backends that speak TLS
// only. It has no code of its own: its tests start a PostgreSQL cluster
// (ssl=on, hostssl only), a redis-server (--tls-port, no plain port) and a
// RabbitMQ node (an SSL listener, no plain one), each with a certificate
// of a CA the tests make, then run the real producer and consumer
// binaries against them with sslmode=verify-full, rediss:// and amqps://
// URLs: a load, the API over HTTPS, the dead-letter commands, and a CA
// that does not match.
//
// Run it alone with
//
//	go test -count=1 -v ./backendtls
//
// It is skipped with -short. It needs the PostgreSQL server binaries,
// redis-server and rabbitmq-server; no shared service is touched.
package backendtls
