package changefeed

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"math"

	"github.com/viswals/viswals"
)

// A Cursor is an opaque position handed to clients: the id of every
// stream event (the token a stream resumes from) and, in the same format,
// the next_cursor of a list page, which is a stream's snapshot phase
// without the snapshot. Its text is base64url of a small binary payload
// followed by a truncated HMAC-SHA256 of it, so a client can neither forge
// nor edit one, and it carries a fingerprint of the filters it was made
// for, so it cannot be replayed against another result set.
//
//	version(1) kind(1) filter-fingerprint(8) fields... mac(16)
//
// Fields by kind, all unsigned varints:
//
//	list:     afterID
//	snapshot: snap, afterID             (a stream still sending the snapshot)
//	live:     hasSnap(1 byte) [snap] pos.Xid pos.ID   (sending changes)
//	snap:     xmin, xmax-xmin, len(xip), xip deltas (first from xmin)

const (
	cursorVersion = 1
	macSize       = 16
	fpSize        = 8
	// maxCursorLen bounds the text a client may send (a snapshot with a few
	// hundred running transactions still fits).
	maxCursorLen = 4096
)

// Kind is what a cursor continues.
type Kind byte

// The kinds of cursor.
const (
	KindList     Kind = 1 // a list page
	KindSnapshot Kind = 2 // a stream in its snapshot phase
	KindLive     Kind = 3 // a stream in its live phase
)

// Cursor is a decoded position.
type Cursor struct {
	Kind    Kind
	AfterID int64            // list, snapshot: the last id sent
	Snap    viswals.Snapshot // snapshot; live while HasSnap
	HasSnap bool
	Pos     viswals.Pos // live: the last change sent (or skipped)
}

// ErrBadCursor and ErrForeignCursor are the reasons Decode fails; the
// caller names the parameter in the message it returns.
var (
	ErrBadCursor     = errors.New("invalid")
	ErrForeignCursor = errors.New("made for other filters")
)

// Codec signs and checks the cursors of one filter. A codec is not safe
// for concurrent use (it reuses its MAC state); make one per request.
type Codec struct {
	mac hash.Hash
	fp  [fpSize]byte // fingerprint of the request's filter
	id  codecID      // the key's and filter's: codecs with equal ids write equal texts
	buf []byte
	sum []byte
}

// NewCodec returns a codec for the cursors of filter f, signed with key
// (emailcrypt's Keyring.CursorKey, so every process shares it).
func NewCodec(key []byte, f viswals.Filter) *Codec {
	fp := filterFingerprint(f)
	k := sha256.Sum256(key)
	return &Codec{mac: hmac.New(sha256.New, key), fp: fp, id: codecID{key: [16]byte(k[:16]), fp: fp}}
}

// codecID identifies what a codec's texts depend on besides the cursor:
// its key and its filter.
type codecID struct {
	key [16]byte
	fp  [fpSize]byte
}

// filterFingerprint identifies a filter. The names are length-prefixed so
// that ("ab","c") and ("a","bc") differ.
func filterFingerprint(f viswals.Filter) [fpSize]byte {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(f.FirstName)))])
	h.Write([]byte(f.FirstName))
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(f.LastName)))])
	h.Write([]byte(f.LastName))
	var fp [fpSize]byte
	copy(fp[:], h.Sum(nil))
	return fp
}

// Append appends the text form of c to dst.
func (cc *Codec) Append(dst []byte, c Cursor) []byte {
	b := cc.buf[:0]
	b = append(b, cursorVersion, byte(c.Kind))
	b = append(b, cc.fp[:]...)
	switch c.Kind {
	case KindList:
		b = binary.AppendUvarint(b, uint64(c.AfterID))
	case KindSnapshot:
		b = appendSnapshot(b, c.Snap)
		b = binary.AppendUvarint(b, uint64(c.AfterID))
	case KindLive:
		if c.HasSnap {
			b = append(b, 1)
			b = appendSnapshot(b, c.Snap)
		} else {
			b = append(b, 0)
		}
		b = binary.AppendUvarint(b, c.Pos.Xid)
		b = binary.AppendUvarint(b, uint64(c.Pos.ID))
	}
	cc.mac.Reset()
	cc.mac.Write(b)
	cc.sum = cc.mac.Sum(cc.sum[:0])
	b = append(b, cc.sum[:macSize]...)
	cc.buf = b
	return base64.RawURLEncoding.AppendEncode(dst, b)
}

func appendSnapshot(b []byte, s viswals.Snapshot) []byte {
	b = binary.AppendUvarint(b, s.Xmin)
	b = binary.AppendUvarint(b, s.Xmax-s.Xmin)
	b = binary.AppendUvarint(b, uint64(len(s.Xip)))
	prev := s.Xmin
	for _, x := range s.Xip {
		b = binary.AppendUvarint(b, x-prev)
		prev = x
	}
	return b
}

// Decode checks and decodes text. It returns ErrBadCursor for
// anything it did not sign (garbage, edits, another key, another kind of
// cursor than want) and ErrForeignCursor for a cursor signed for other
// filters.
func (cc *Codec) Decode(text string, want ...Kind) (Cursor, error) {
	if len(text) == 0 || len(text) > maxCursorLen {
		return Cursor{}, ErrBadCursor
	}
	raw, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil || len(raw) < 2+fpSize+macSize {
		return Cursor{}, ErrBadCursor
	}
	body, sum := raw[:len(raw)-macSize], raw[len(raw)-macSize:]
	cc.mac.Reset()
	cc.mac.Write(body)
	if !hmac.Equal(cc.mac.Sum(nil)[:macSize], sum) {
		return Cursor{}, ErrBadCursor
	}
	if body[0] != cursorVersion {
		return Cursor{}, ErrBadCursor
	}
	c := Cursor{Kind: Kind(body[1])}
	if !kindIn(c.Kind, want) {
		return Cursor{}, ErrBadCursor
	}
	if [fpSize]byte(body[2:2+fpSize]) != cc.fp {
		return Cursor{}, ErrForeignCursor
	}
	r := reader{b: body[2+fpSize:]}
	switch c.Kind {
	case KindList:
		c.AfterID = r.id()
	case KindSnapshot:
		c.Snap, c.HasSnap = r.snapshot(), true
		c.AfterID = r.id()
	case KindLive:
		switch r.byte() {
		case 0:
		case 1:
			c.HasSnap, c.Snap = true, r.snapshot()
		default:
			r.bad = true
		}
		c.Pos.Xid = r.uvarint()
		c.Pos.ID = r.id()
	}
	if r.bad || len(r.b) != 0 {
		return Cursor{}, ErrBadCursor
	}
	return c, nil
}

func kindIn(k Kind, kinds []Kind) bool {
	for _, w := range kinds {
		if k == w {
			return true
		}
	}
	return false
}

// reader decodes the payload. Any malformed field sets bad; the values it
// then returns are zero and never used.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) id() int64 {
	v := r.uvarint()
	if v > math.MaxInt64 {
		r.bad = true
		return 0
	}
	return int64(v)
}

// snapshot decodes and validates a snapshot: xip sorted, unique and
// within [xmin, xmax).
func (r *reader) snapshot() viswals.Snapshot {
	var s viswals.Snapshot
	s.Xmin = r.uvarint()
	span := r.uvarint()
	n := r.uvarint()
	if r.bad || span > math.MaxUint64-s.Xmin || n > uint64(len(r.b)) {
		r.bad = true
		return viswals.Snapshot{}
	}
	s.Xmax = s.Xmin + span
	if n > 0 {
		s.Xip = make([]uint64, 0, n)
	}
	prev := s.Xmin
	for i := uint64(0); i < n; i++ {
		d := r.uvarint()
		if r.bad || (i > 0 && d == 0) || d >= s.Xmax-prev {
			r.bad = true
			return viswals.Snapshot{}
		}
		prev += d
		s.Xip = append(s.Xip, prev)
	}
	return s
}
