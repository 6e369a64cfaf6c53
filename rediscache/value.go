package rediscache

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/viswals/viswals"
)

// A cached value is the version in text, then the user in binary:
//
//	"u2:" <16 hex>-<16 hex>  id  first_name  last_name  email_address
//	email_hash  created_at  flags  [deleted_at]  [merged_at]  [parent_user_id]
//
// The version sits at a fixed offset with a fixed width so that the Put
// script compares it with string.sub. Each half is an int64 with its sign
// bit flipped, as 16 lowercase hex digits: string order then equals
// viswals.Version order for every int64, negatives too. Integers are
// varints (encoding/binary); strings and the hash are a uvarint length and
// the bytes; a time is its Unix seconds (varint) and nanoseconds (uvarint);
// flags tell which of the optional fields follow. The email is the sealed
// one: the cache never holds plaintext.
//
// Binary rather than JSON because encoding and decoding values was a
// third of the consumer's CPU during loads and most of a cache hit's.
// "u2:" names the format: a value in any other (an older release's JSON,
// say) is not ours, so Put replaces it and Get reports it corrupt.
const (
	valuePrefix = "u2:"
	versionLen  = 16 + 1 + 16
	versionEnd  = len(valuePrefix) + versionLen // offset of the first body byte
	signBit     = 1 << 63
)

const (
	hasDeleted = 1 << iota
	hasMerged
	hasParent
)

// ErrCorrupt is wrapped by the error of a Get whose cached value cannot be
// decoded. The caller should read Postgres instead and Put the result.
var ErrCorrupt = errors.New("rediscache: corrupt cached value")

// appendValue appends the cached value of u to dst and returns it.
func appendValue(dst []byte, u *viswals.SealedUser) []byte {
	dst = append(dst, valuePrefix...)
	dst = appendVersion(dst, u.Version)
	dst = binary.AppendVarint(dst, u.ID)
	dst = appendBytes(dst, u.FirstName)
	dst = appendBytes(dst, u.LastName)
	dst = appendBytes(dst, u.EmailSealed)
	dst = appendBytes(dst, u.EmailHash)
	dst = appendTime(dst, u.CreatedAt)
	var flags byte
	if u.DeletedAt != nil {
		flags |= hasDeleted
	}
	if u.MergedAt != nil {
		flags |= hasMerged
	}
	if u.ParentUserID != nil {
		flags |= hasParent
	}
	dst = append(dst, flags)
	if u.DeletedAt != nil {
		dst = appendTime(dst, *u.DeletedAt)
	}
	if u.MergedAt != nil {
		dst = appendTime(dst, *u.MergedAt)
	}
	if u.ParentUserID != nil {
		dst = binary.AppendVarint(dst, *u.ParentUserID)
	}
	return dst
}

func appendBytes[T string | []byte](dst []byte, s T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = binary.AppendVarint(dst, t.Unix())
	return binary.AppendUvarint(dst, uint64(t.Nanosecond()))
}

// decodeValue decodes a cached value. Any flaw, including a version that
// is not where the Put script looks for it, wraps ErrCorrupt.
func decodeValue(v []byte) (viswals.SealedUser, error) {
	if len(v) < versionEnd || string(v[:len(valuePrefix)]) != valuePrefix {
		return viswals.SealedUser{}, fmt.Errorf("%w: no version at the start", ErrCorrupt)
	}
	version, ok := parseVersion(v[len(valuePrefix):versionEnd])
	if !ok {
		return viswals.SealedUser{}, fmt.Errorf("%w: malformed version", ErrCorrupt)
	}
	d := decoder{rest: v[versionEnd:]}
	u := viswals.SealedUser{Version: version}
	u.ID = d.varint()
	u.FirstName = d.text()
	u.LastName = d.text()
	u.EmailSealed = d.text()
	if hash := d.bytes(); len(hash) > 0 {
		u.EmailHash = hash
	}
	u.CreatedAt = d.time()
	flags := d.byte()
	if flags&^(hasDeleted|hasMerged|hasParent) != 0 {
		d.fail("unknown flags")
	}
	if flags&hasDeleted != 0 {
		t := d.time()
		u.DeletedAt = &t
	}
	if flags&hasMerged != 0 {
		t := d.time()
		u.MergedAt = &t
	}
	if flags&hasParent != 0 {
		p := d.varint()
		u.ParentUserID = &p
	}
	if d.err == nil && len(d.rest) > 0 {
		d.fail("trailing bytes")
	}
	if d.err == nil && u.EmailSealed == "" {
		d.fail("no email")
	}
	if d.err != nil {
		return viswals.SealedUser{}, fmt.Errorf("%w: %s", ErrCorrupt, d.err)
	}
	return u, nil
}

// decoder reads a value's body; after the first flaw every read returns a
// zero value and err says what it was.
type decoder struct {
	rest []byte
	err  error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = errors.New(what)
	}
	d.rest = nil
}

func (d *decoder) varint() int64 {
	n, size := binary.Varint(d.rest)
	if size <= 0 {
		d.fail("bad integer")
		return 0
	}
	d.rest = d.rest[size:]
	return n
}

func (d *decoder) uvarint() uint64 {
	n, size := binary.Uvarint(d.rest)
	if size <= 0 {
		d.fail("bad integer")
		return 0
	}
	d.rest = d.rest[size:]
	return n
}

func (d *decoder) byte() byte {
	if len(d.rest) == 0 {
		d.fail("truncated")
		return 0
	}
	b := d.rest[0]
	d.rest = d.rest[1:]
	return b
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.rest)) {
		d.fail("truncated")
		return nil
	}
	b := d.rest[:n:n]
	d.rest = d.rest[n:]
	return b
}

// text is a string that must be UTF-8, as every string written is.
func (d *decoder) text() string {
	b := d.bytes()
	if !utf8.Valid(b) {
		d.fail("invalid UTF-8")
		return ""
	}
	return string(b)
}

func (d *decoder) time() time.Time {
	sec, nsec := d.varint(), d.uvarint()
	if nsec >= uint64(time.Second) {
		d.fail("bad time")
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
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
