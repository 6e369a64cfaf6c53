package rabbitmq

import (
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/viswals/viswals"
)

// classify gives a broker or network error its domain code while keeping
// the original in the chain: refusals that no retry can fix (bad
// credentials, missing vhost permissions, a queue declared with other
// arguments) are EINVALID, everything else EUNAVAILABLE.
func classify(err error) error {
	if err == nil {
		return nil
	}
	code := viswals.EUNAVAILABLE
	if permanent(err) {
		code = viswals.EINVALID
	}
	return &codedError{code: code, err: err}
}

// permanent reports whether retrying err is pointless.
func permanent(err error) bool {
	// amqp.ErrCredentials, ErrSASL and ErrVhost are *amqp.Error with code
	// AccessRefused too.
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused, amqp.PreconditionFailed, amqp.NotAllowed:
			return true
		}
	}
	return false
}

// refusedWhileRestarting reports whether err is a refusal that a broker
// also gives, for a moment, while it stops or starts (rabbitmqctl
// stop_app/start_app, a node restart): its listener accepts connections
// before its users and vhosts are loaded, or after they are gone, and
// answers ACCESS_REFUSED or NOT_ALLOWED. Once a client has connected with
// its credentials, such a refusal is retried like an outage.
func refusedWhileRestarting(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && (ae.Code == amqp.AccessRefused || ae.Code == amqp.NotAllowed)
}

// codedError carries a viswals code (through As) and the cause (through
// Unwrap), so callers get both viswals.ErrorCode and errors.Is on amqp errors.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// As lets viswals.ErrorCode see the code.
func (e *codedError) As(target any) bool {
	if t, ok := target.(**viswals.Error); ok {
		*t = &viswals.Error{Code: e.code, Message: e.err.Error()}
		return true
	}
	return false
}

func unavailablef(format string, args ...any) error {
	return &codedError{code: viswals.EUNAVAILABLE, err: fmt.Errorf(format, args...)}
}
