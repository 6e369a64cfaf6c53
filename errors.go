package viswals

import (
	"errors"
	"fmt"
)

// Error codes. Each layer reports failures with one of these; the HTTP
// layer maps them to statuses in one place.
const (
	EINVALID     = "invalid"     // the caller's input breaks a rule
	ENOTFOUND    = "not_found"   // the thing asked for does not exist
	EUNAVAILABLE = "unavailable" // a dependency is down; retrying may help
	EINTERNAL    = "internal"    // a bug or an unexpected failure
	// EINTEGRITY: stored data failed its integrity check (a sealed email
	// that does not open: unknown key, tampered, or moved from another
	// row). A server-side fault, but one the caller is told about: the
	// data is not served, and retrying will not help.
	EINTEGRITY = "integrity"

	// EUNAUTHENTICATED: no credentials, or credentials that are malformed,
	// unknown, revoked or expired. The caller may try again with others.
	EUNAUTHENTICATED = "unauthenticated"
	// EFORBIDDEN: the caller is known, but its role does not allow what
	// it asked for. Other credentials of the same role will not help.
	EFORBIDDEN = "forbidden"
)

// Error is a domain error: a code for programs and a message for people.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the message of the first *Error in err's chain, or a
// generic text for other errors so that internals never leak to clients.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "internal error"
	}
}
