package httpapi

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"math"

	"github.com/viswals/viswals"
)

// A cursor is an opaque position handed to clients: next_cursor of a page,
// and the id of every SSE event. It is base64url of a small binary payload
// followed by a truncated HMAC-SHA256 of it, so a client can neither forge
// nor edit one, and it carries a fingerprint of the filters it was made
// for, so it cannot be replayed against another result set.
//
//	version(1) kind(1) filter-fingerprint(8) fields... mac(16)
//
// Fields by kind, all unsigned varints:
//
//	list:     afterID
//	snapshot: snap, afterID             (SSE, still sending the snapshot)
//	live:     hasSnap(1 byte) [snap] pos.Xid pos.ID   (SSE, sending changes)
//	snap:     xmin, xmax-xmin, len(xip), xip deltas (first from xmin)

const (
	cursorVersion = 1
	macSize       = 16
	fpSize        = 8
	// maxCursorLen bounds the text a client may send (a snapshot with a few
	// hundred running transactions still fits).
	maxCursorLen = 4096
)

type cursorKind byte

const (
	kindList     cursorKind = 1
	kindSnapshot cursorKind = 2
	kindLive     cursorKind = 3
)

// cursor is a decoded position.
type cursor struct {
	kind    cursorKind
	afterID int64            // list, snapshot: the last id sent
	snap    viswals.Snapshot // snapshot; live while hasSnap
	hasSnap bool
	pos     viswals.Pos // live: the last change sent (or skipped)
}

// errBadCursor and errForeignCursor are the reasons decodeCursor fails;
// the caller names the parameter in the message it returns.
var (
	errBadCursor     = errors.New("invalid")
	errForeignCursor = errors.New("made for other filters")
)

// DeriveCursorKey derives the key that signs cursors from the email
// encryption key, so that no second secret needs configuring and a cursor
// reveals nothing about the encryption key.
func DeriveCursorKey(encryptionKey []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, encryptionKey, nil, "viswals httpapi cursor v1", 32)
}

// cursorCodec signs and checks cursors. A codec is not safe for concurrent
// use (it reuses its MAC state); make one per request with newCodec.
type cursorCodec struct {
	mac hash.Hash
	fp  [fpSize]byte // fingerprint of the request's filter
	buf []byte
	sum []byte
}

func newCodec(key []byte, f viswals.Filter) *cursorCodec {
	return &cursorCodec{mac: hmac.New(sha256.New, key), fp: filterFingerprint(f)}
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

// appendCursor appends the text form of c to dst.
func (cc *cursorCodec) appendCursor(dst []byte, c cursor) []byte {
	b := cc.buf[:0]
	b = append(b, cursorVersion, byte(c.kind))
	b = append(b, cc.fp[:]...)
	switch c.kind {
	case kindList:
		b = binary.AppendUvarint(b, uint64(c.afterID))
	case kindSnapshot:
		b = appendSnapshot(b, c.snap)
		b = binary.AppendUvarint(b, uint64(c.afterID))
	case kindLive:
		if c.hasSnap {
			b = append(b, 1)
			b = appendSnapshot(b, c.snap)
		} else {
			b = append(b, 0)
		}
		b = binary.AppendUvarint(b, c.pos.Xid)
		b = binary.AppendUvarint(b, uint64(c.pos.ID))
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

// decodeCursor checks and decodes text. It returns errBadCursor for
// anything it did not sign (garbage, edits, another key, another kind of
// cursor than want) and errForeignCursor for a cursor signed for other
// filters.
func (cc *cursorCodec) decodeCursor(text string, want ...cursorKind) (cursor, error) {
	if len(text) == 0 || len(text) > maxCursorLen {
		return cursor{}, errBadCursor
	}
	raw, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil || len(raw) < 2+fpSize+macSize {
		return cursor{}, errBadCursor
	}
	body, sum := raw[:len(raw)-macSize], raw[len(raw)-macSize:]
	cc.mac.Reset()
	cc.mac.Write(body)
	if !hmac.Equal(cc.mac.Sum(nil)[:macSize], sum) {
		return cursor{}, errBadCursor
	}
	if body[0] != cursorVersion {
		return cursor{}, errBadCursor
	}
	c := cursor{kind: cursorKind(body[1])}
	if !kindIn(c.kind, want) {
		return cursor{}, errBadCursor
	}
	if [fpSize]byte(body[2:2+fpSize]) != cc.fp {
		return cursor{}, errForeignCursor
	}
	r := reader{b: body[2+fpSize:]}
	switch c.kind {
	case kindList:
		c.afterID = r.id()
	case kindSnapshot:
		c.snap, c.hasSnap = r.snapshot(), true
		c.afterID = r.id()
	case kindLive:
		switch r.byte() {
		case 0:
		case 1:
			c.hasSnap, c.snap = true, r.snapshot()
		default:
			r.bad = true
		}
		c.pos.Xid = r.uvarint()
		c.pos.ID = r.id()
	}
	if r.bad || len(r.b) != 0 {
		return cursor{}, errBadCursor
	}
	return c, nil
}

func kindIn(k cursorKind, kinds []cursorKind) bool {
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
