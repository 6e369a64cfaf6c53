// Package faults is the pipeline's fault-injection suite. It has
// no code of its own: its tests build cmd/producer and cmd/consumer, run
// them as real processes against a Postgres cluster, a redis-server and a
// RabbitMQ node that the tests start themselves (on free ports, in
// temporary directories), break one component in the middle of a load of
// 100,000 rows (kill -9, SIGTERM, a broker, database or cache restart,
// poison messages) and then compare the users table with the input's
// valid rows exactly.
//
// Run it alone with
//
//	go test -count=1 -v ./faults
//
// and skip it with -short. It needs, on the machine: the PostgreSQL server
// binaries (initdb, pg_ctl; run as the postgres user when the tests run as
// root), redis-server, and rabbitmq-server with rabbitmqctl. No shared
// service of the machine is touched. See docs/guarantees.md for what the
// scenarios establish.
package faults
