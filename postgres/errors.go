package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/viswals/viswals"
)

// codedError gives a driver error a viswals code while keeping the driver
// error in the chain: errors.As finds the *viswals.Error (the code, and a
// message fit for clients), errors.Is/As still reach the *pgconn.PgError
// or net error, and Error() has the details for logs.
type codedError struct {
	coded *viswals.Error
	op    string
	cause error
}

func (e *codedError) Error() string   { return e.op + ": " + e.cause.Error() }
func (e *codedError) Unwrap() []error { return []error{e.coded, e.cause} }

// classify wraps err with op and the viswals code that tells the caller
// what to do about it: retry (EUNAVAILABLE), give up on the data
// (EINVALID), or treat it as a bug (EINTERNAL, the default).
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	switch code := errorCode(err); code {
	case viswals.EUNAVAILABLE:
		// Addresses and driver internals stay out of the client's message.
		return &codedError{coded: viswals.Errorf(code, "%s: database unavailable", op), op: op, cause: err}
	case viswals.EINVALID:
		// Postgres's reason (bad encoding, value out of range) is what a
		// dead-lettered message or a 400 should say.
		return &codedError{coded: viswals.Errorf(code, "%s: %v", op, err), op: op, cause: err}
	default:
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
			// Most likely a command pointed at a database no consumer
			// has migrated: say so rather than only which table is missing.
			return fmt.Errorf("%s: %w (is this the consumer's database? a consumer started with migrations on creates the tables)", op, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
}

func invalidf(format string, args ...any) error {
	return viswals.Errorf(viswals.EINVALID, format, args...)
}

// errorCode maps a driver error to a viswals code.
func errorCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return sqlStateCode(pgErr.Code)
	}
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	switch {
	case errors.As(err, &connectErr),
		errors.As(err, &netErr), // refused, reset, timed out
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		pgconn.Timeout(err),
		// A cancelled or expired context: the work was not done and may be
		// done again (the consumer does not ack it).
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		// The connection broke mid-statement or mid-transaction.
		pgconn.SafeToRetry(err), errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, pgx.ErrTxClosed),
		// Close was called, for instance during shutdown.
		errors.Is(err, puddle.ErrClosedPool):
		return viswals.EUNAVAILABLE
	}
	var ver *viswals.Error
	if errors.As(err, &ver) {
		return ver.Code
	}
	return viswals.EINTERNAL
}

// sqlStateCode maps an SQLSTATE (Appendix A of the PostgreSQL manual).
func sqlStateCode(state string) string {
	switch state {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"55P03", // lock_not_available
		"57014", // query_canceled (statement_timeout)
		"57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now (starting up, recovering)
		"57P05", // idle_session_timeout
		"25006": // read_only_sql_transaction: a failover left us on a standby
		return viswals.EUNAVAILABLE
	}
	if len(state) < 2 {
		return viswals.EINTERNAL
	}
	switch state[:2] {
	case "08", // connection_exception
		"53", // insufficient_resources: disk full, out of memory, too many connections
		"58": // system_error: I/O errors
		return viswals.EUNAVAILABLE
	case "22", // data_exception: bad encoding, value out of range
		"23", // integrity_constraint_violation
		"54": // program_limit_exceeded: e.g. a name too long for an index row
		return viswals.EINVALID
	}
	return viswals.EINTERNAL
}
