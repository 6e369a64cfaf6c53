// Package viswals holds the domain of the pipeline: the User, the rules a
// user must satisfy, and the error codes every layer maps to. It imports no
// infrastructure so that every other package can depend on it.
package viswals

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds on user fields. Postgres rejects NUL bytes and invalid UTF-8 in
// text, so they are refused here, before they can fail a whole batch.
const (
	MaxNameBytes  = 1024
	MaxEmailBytes = 320
	// MaxUnixMilli is 9999-12-31T23:59:59.999Z: beyond it times stop being
	// printable as RFC 3339.
	MaxUnixMilli = 253402300799999
)

// User is one user record. Email is plaintext in memory only; it is
// encrypted before it reaches any store.
type User struct {
	ID           int64      `json:"id"`
	FirstName    string     `json:"first_name"`
	LastName     string     `json:"last_name"`
	Email        string     `json:"email_address"`
	CreatedAt    time.Time  `json:"created_at"`
	DeletedAt    *time.Time `json:"deleted_at"`
	MergedAt     *time.Time `json:"merged_at"`
	ParentUserID *int64     `json:"parent_user_id"`
}

// Version orders the writes of one user: a row with a greater version wins,
// whatever order the rows are delivered or committed in. Load identifies a
// producer run (its start time in unix nanoseconds), Line the row's line in
// that run's file, so a later row of a later load always wins.
type Version struct {
	Load int64 `json:"load"`
	Line int64 `json:"line"`
}

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	return v.Load < w.Load || (v.Load == w.Load && v.Line < w.Line)
}

// DefaultMaxVersionSkew is how far in the future a version's load may be
// before it is refused (see Version.CheckNotAhead): more than the drift of
// clocks kept by NTP, far less than a pinned row would matter.
const DefaultMaxVersionSkew = 5 * time.Minute

// CheckNotAhead refuses a version whose load lies more than maxSkew after
// now. Load ids are the producers' start times, so one from the future is
// a producer clock that is wrong or a forged message; stored, it would win
// over every later load of that user until the clock caught up (forever,
// for a load of MaxInt64).
func (v Version) CheckNotAhead(now time.Time, maxSkew time.Duration) error {
	limit := now.Add(maxSkew).UnixNano()
	if v.Load <= limit {
		return nil
	}
	return Errorf(EINVALID, "version load %s is %s ahead of the consumer's clock, more than the %s allowed: the producer's clock is wrong, or the version forged",
		time.Unix(0, v.Load).UTC().Format(time.RFC3339), time.Duration(v.Load-now.UnixNano()).Round(time.Second), maxSkew)
}

// Record is a user with the version of the row it came from: what travels
// from the producer to the consumer and what the stores write.
type Record struct {
	User
	Version Version `json:"version"`
}

// Refusal is a record of a batch that cannot be stored, named by its
// position in the batch, with the reason. The caller holds the record as
// it arrived, so a refused record can leave only whole (dead-lettered).
type Refusal struct {
	Index  int
	Reason string
}

// Validate checks u against the rules every stored user obeys and returns
// an EINVALID error naming the first field that breaks one.
func (u *User) Validate() error {
	if u.ID < 1 {
		return Errorf(EINVALID, "id must be an integer >= 1, got %d", u.ID)
	}
	if err := validText("first_name", u.FirstName, MaxNameBytes); err != nil {
		return err
	}
	if err := validText("last_name", u.LastName, MaxNameBytes); err != nil {
		return err
	}
	if err := ValidateEmail(u.Email); err != nil {
		return err
	}
	if err := validTime("created_at", u.CreatedAt); err != nil {
		return err
	}
	if u.DeletedAt != nil {
		if err := validTime("deleted_at", *u.DeletedAt); err != nil {
			return err
		}
	}
	if u.MergedAt != nil {
		if err := validTime("merged_at", *u.MergedAt); err != nil {
			return err
		}
	}
	if u.ParentUserID != nil && *u.ParentUserID < 1 {
		return Errorf(EINVALID, "parent_user_id must be an id >= 1 or null, got %d", *u.ParentUserID)
	}
	return nil
}

// ValidateEmail accepts exactly one '@' with text on both sides, within the
// size bound, valid UTF-8 without control bytes.
func ValidateEmail(email string) error {
	if err := validText("email_address", email, MaxEmailBytes); err != nil {
		return err
	}
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return Errorf(EINVALID, "email_address must have one '@' with text on both sides")
	}
	return nil
}

func validText(field, s string, maxBytes int) error {
	if len(s) > maxBytes {
		return Errorf(EINVALID, "%s is longer than %d bytes", field, maxBytes)
	}
	if !utf8.ValidString(s) {
		return Errorf(EINVALID, "%s is not valid UTF-8", field)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return Errorf(EINVALID, "%s contains a NUL byte", field)
	}
	return nil
}

func validTime(field string, t time.Time) error {
	ms := t.UnixMilli()
	if ms < 0 || ms > MaxUnixMilli {
		return Errorf(EINVALID, "%s must be between 1970 and 9999, got %s", field, fmt.Sprint(ms))
	}
	return nil
}
