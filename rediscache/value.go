package rediscache

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/viswals/viswals"
)

// A cached value is one JSON object whose first member is the version:
//
//	{"version":"<16 hex>-<16 hex>","id":1,"first_name":...,"email_address":"v1:...",...}
//
// The version sits at a fixed offset with a fixed width so that the Put
// script compares it with string.sub, without decoding JSON. Each half is
// an int64 with its sign bit flipped, as 16 lowercase hex digits: string
// order then equals viswals.Version order for every int64, negatives too.
const (
	valuePrefix = `{"version":"`
	versionLen  = 16 + 1 + 16
	versionEnd  = len(valuePrefix) + versionLen // offset of the closing quote
	signBit     = 1 << 63
)

// ErrCorrupt is wrapped by the error of a Get whose cached value cannot be
// decoded. The caller should read Postgres instead and Put the result.
var ErrCorrupt = errors.New("rediscache: corrupt cached value")

// body is the JSON of a cached user after its version. The email is the
// sealed one: the cache never holds plaintext.
type body struct {
	ID           int64      `json:"id"`
	FirstName    string     `json:"first_name"`
	LastName     string     `json:"last_name"`
	EmailSealed  string     `json:"email_address"`
	EmailHash    []byte     `json:"email_hash"`
	CreatedAt    time.Time  `json:"created_at"`
	DeletedAt    *time.Time `json:"deleted_at"`
	MergedAt     *time.Time `json:"merged_at"`
	ParentUserID *int64     `json:"parent_user_id"`
}

// stored is a whole cached value, for decoding.
type stored struct {
	Version string `json:"version"`
	body
}

// appendValue appends the cached value of u to buf and returns it.
func appendValue(buf *bytes.Buffer, u *viswals.SealedUser) error {
	start := buf.Len()
	buf.WriteString(valuePrefix)
	buf.Write(appendVersion(buf.AvailableBuffer(), u.Version))
	buf.WriteByte('"')
	// The encoder writes the body as its own object; its opening brace
	// is then turned into the comma that follows the version member.
	open := buf.Len()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(body{
		ID:           u.ID,
		FirstName:    u.FirstName,
		LastName:     u.LastName,
		EmailSealed:  u.EmailSealed,
		EmailHash:    u.EmailHash,
		CreatedAt:    u.CreatedAt.UTC(),
		DeletedAt:    utc(u.DeletedAt),
		MergedAt:     utc(u.MergedAt),
		ParentUserID: u.ParentUserID,
	})
	if err != nil {
		buf.Truncate(start)
		return fmt.Errorf("encode user %d: %w", u.ID, err)
	}
	buf.Bytes()[open] = ','
	buf.Truncate(buf.Len() - 1) // Encode ends with a newline
	return nil
}

// decodeValue decodes a cached value. Any flaw, including a version that
// is not where the Put script looks for it, wraps ErrCorrupt.
func decodeValue(v []byte) (viswals.SealedUser, error) {
	if len(v) <= versionEnd || !bytes.HasPrefix(v, []byte(valuePrefix)) || v[versionEnd] != '"' {
		return viswals.SealedUser{}, fmt.Errorf("%w: no version at the start", ErrCorrupt)
	}
	version, ok := parseVersion(v[len(valuePrefix):versionEnd])
	if !ok {
		return viswals.SealedUser{}, fmt.Errorf("%w: malformed version", ErrCorrupt)
	}
	var s stored
	if err := json.Unmarshal(v, &s); err != nil {
		return viswals.SealedUser{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if s.Version != string(v[len(valuePrefix):versionEnd]) {
		return viswals.SealedUser{}, fmt.Errorf("%w: version member repeated", ErrCorrupt)
	}
	if s.EmailSealed == "" {
		return viswals.SealedUser{}, fmt.Errorf("%w: no email", ErrCorrupt)
	}
	return viswals.SealedUser{
		ID:           s.ID,
		FirstName:    s.FirstName,
		LastName:     s.LastName,
		EmailSealed:  s.EmailSealed,
		EmailHash:    s.EmailHash,
		CreatedAt:    s.CreatedAt.UTC(),
		DeletedAt:    utc(s.DeletedAt),
		MergedAt:     utc(s.MergedAt),
		ParentUserID: s.ParentUserID,
		Version:      version,
	}, nil
}

func appendVersion(dst []byte, v viswals.Version) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v.Load)^signBit)
	dst = hex.AppendEncode(dst, b[:])
	dst = append(dst, '-')
	binary.BigEndian.PutUint64(b[:], uint64(v.Line)^signBit)
	return hex.AppendEncode(dst, b[:])
}

// parseVersion accepts only what appendVersion writes: lowercase hex, so
// that the script's string comparison orders it correctly.
func parseVersion(s []byte) (viswals.Version, bool) {
	if len(s) != versionLen || s[16] != '-' {
		return viswals.Version{}, false
	}
	load, ok1 := parseHalf(s[:16])
	line, ok2 := parseHalf(s[17:])
	return viswals.Version{Load: load, Line: line}, ok1 && ok2
}

func parseHalf(s []byte) (int64, bool) {
	var n uint64
	for _, c := range s {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return int64(n ^ signBit), true
}

// utc returns t in UTC, so that every cached time is written and read
// the same way whatever zone it came in.
func utc(t *time.Time) *time.Time {
	if t == nil || t.Location() == time.UTC {
		return t
	}
	u := t.UTC()
	return &u
}
