package httpapi

import (
	"encoding/base64"
	"math"
	"reflect"
	"testing"

	"github.com/viswals/viswals"
)

func TestCursorRoundTrip(t *testing.T) {
	f := viswals.Filter{FirstName: "Ann", LastName: "Lé"}
	for _, c := range []cursor{
		{kind: kindList, afterID: 0},
		{kind: kindList, afterID: math.MaxInt64},
		{kind: kindSnapshot, afterID: 42, hasSnap: true, snap: viswals.Snapshot{Xmin: 100, Xmax: 100}},
		{kind: kindSnapshot, afterID: 42, hasSnap: true, snap: viswals.Snapshot{Xmin: 100, Xmax: 250, Xip: []uint64{100, 101, 249}}},
		{kind: kindLive, pos: viswals.Pos{Xid: 120, ID: 7}, hasSnap: true, snap: viswals.Snapshot{Xmin: 100, Xmax: 250, Xip: []uint64{130}}},
		{kind: kindLive, pos: viswals.Pos{Xid: math.MaxUint64, ID: math.MaxInt64}},
	} {
		cc := newCodec(testKey, f)
		text := string(cc.appendCursor(nil, c))
		got, err := newCodec(testKey, f).decodeCursor(text, c.kind)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip %+v -> %q -> %+v", c, text, got)
		}
	}
}

func TestCursorRejects(t *testing.T) {
	f := viswals.Filter{FirstName: "a"}
	cc := newCodec(testKey, f)
	good := cc.appendCursor(nil, cursor{kind: kindLive, pos: viswals.Pos{Xid: 5, ID: 9}, hasSnap: true, snap: viswals.Snapshot{Xmin: 1, Xmax: 9, Xip: []uint64{3}}})
	raw, _ := base64.RawURLEncoding.DecodeString(string(good))

	// Every single-bit change of the payload or the MAC is refused.
	for i := range raw {
		for bit := range 8 {
			b := append([]byte(nil), raw...)
			b[i] ^= 1 << bit
			if _, err := cc.decodeCursor(base64.RawURLEncoding.EncodeToString(b), kindLive); err == nil {
				t.Fatalf("flipping bit %d of byte %d accepted", bit, i)
			}
		}
	}
	for name, text := range map[string]string{
		"empty":      "",
		"truncated":  string(good[:len(good)-1]),
		"extended":   string(good) + "A",
		"padded":     string(good) + "==",
		"std base64": base64.StdEncoding.EncodeToString(raw),
		"short":      "AAAA",
	} {
		if _, err := cc.decodeCursor(text, kindLive); err == nil && text != string(good) {
			t.Errorf("%s cursor accepted", name)
		}
	}
	if _, err := cc.decodeCursor(string(good), kindList, kindSnapshot); err != errBadCursor {
		t.Errorf("a live cursor used as another kind: %v", err)
	}
	if _, err := newCodec(testKey, viswals.Filter{FirstName: "b"}).decodeCursor(string(good), kindLive); err != errForeignCursor {
		t.Errorf("a cursor of other filters: %v", err)
	}
	if _, err := newCodec(testKey, viswals.Filter{FirstName: "", LastName: "a"}).decodeCursor(string(good), kindLive); err != errForeignCursor {
		t.Errorf("filters moved between fields: %v", err)
	}
	if _, err := newCodec([]byte("another key, also 32 bytes long!"), f).decodeCursor(string(good), kindLive); err != errBadCursor {
		t.Errorf("a cursor of another key: %v", err)
	}
}

// Payloads that are correctly signed but malformed (which only a key
// holder could make) are still refused without a panic.
func TestCursorRejectsSignedGarbage(t *testing.T) {
	cc := newCodec(testKey, viswals.Filter{})
	sign := func(body []byte) string {
		cc.mac.Reset()
		cc.mac.Write(body)
		return base64.RawURLEncoding.EncodeToString(append(body, cc.mac.Sum(nil)[:macSize]...))
	}
	head := append([]byte{cursorVersion, byte(kindSnapshot)}, cc.fp[:]...)
	for name, fields := range map[string][]byte{
		"no fields":          {},
		"xip out of range":   {10, 5, 1, 7, 1},    // xmin 10, xmax 15, xip 17
		"xip not increasing": {10, 5, 2, 1, 0, 1}, // 11, 11
		"xmax overflow":      append([]byte{10}, append(uvarint(math.MaxUint64), 0, 1)...),
		"huge xip count":     {10, 5, 0xff, 0xff, 0x03, 1},
		"id over int64":      append([]byte{10, 5, 0}, uvarint(math.MaxUint64)...),
		"trailing bytes":     {10, 5, 0, 1, 0},
	} {
		if _, err := cc.decodeCursor(sign(append(append([]byte(nil), head...), fields...)), kindSnapshot); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	badVersion := append([]byte{9, byte(kindList)}, cc.fp[:]...)
	if _, err := cc.decodeCursor(sign(append(badVersion, 1)), kindList); err == nil {
		t.Errorf("unknown version accepted")
	}
}

func uvarint(v uint64) []byte {
	var b []byte
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func TestSnapshotVisible(t *testing.T) {
	s := viswals.Snapshot{Xmin: 10, Xmax: 20, Xip: []uint64{12, 15}}
	for xid, want := range map[uint64]bool{1: true, 9: true, 10: true, 11: true, 12: false, 14: true, 15: false, 19: true, 20: false, 99: false} {
		if s.Visible(xid) != want {
			t.Errorf("Visible(%d) = %v", xid, !want)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	cc := newCodec(testKey, viswals.Filter{})
	f.Add(string(cc.appendCursor(nil, cursor{kind: kindList, afterID: 5})))
	f.Add(string(cc.appendCursor(nil, cursor{kind: kindSnapshot, hasSnap: true, snap: viswals.Snapshot{Xmin: 3, Xmax: 9, Xip: []uint64{4}}})))
	f.Add(string(cc.appendCursor(nil, cursor{kind: kindLive, pos: viswals.Pos{Xid: 3, ID: 1}})))
	f.Add("")
	f.Add("%%%")
	f.Fuzz(func(t *testing.T, text string) {
		for _, kinds := range [][]cursorKind{{kindList}, {kindSnapshot, kindLive}} {
			c, err := newCodec(testKey, viswals.Filter{}).decodeCursor(text, kinds...)
			if err != nil {
				if err != errBadCursor && err != errForeignCursor {
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			// Whatever decodes re-encodes to the same text: a cursor has
			// exactly one spelling.
			if again := string(newCodec(testKey, viswals.Filter{}).appendCursor(nil, c)); again != text {
				t.Fatalf("%q decodes to %+v which encodes to %q", text, c, again)
			}
		}
	})
}
