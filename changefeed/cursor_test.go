package changefeed

import (
	"bytes"
	"encoding/base64"
	"math"
	"reflect"
	"testing"

	"github.com/viswals/viswals"
)

var testKey = bytes.Repeat([]byte("k"), 32)

func TestCursorRoundTrip(t *testing.T) {
	f := viswals.Filter{FirstName: "Ann", LastName: "Lé"}
	for _, c := range []Cursor{
		{Kind: KindList, AfterID: 0},
		{Kind: KindList, AfterID: math.MaxInt64},
		{Kind: KindSnapshot, AfterID: 42, HasSnap: true, Snap: viswals.Snapshot{Xmin: 100, Xmax: 100}},
		{Kind: KindSnapshot, AfterID: 42, HasSnap: true, Snap: viswals.Snapshot{Xmin: 100, Xmax: 250, Xip: []uint64{100, 101, 249}}},
		{Kind: KindLive, Pos: viswals.Pos{Xid: 120, ID: 7}, HasSnap: true, Snap: viswals.Snapshot{Xmin: 100, Xmax: 250, Xip: []uint64{130}}},
		{Kind: KindLive, Pos: viswals.Pos{Xid: math.MaxUint64, ID: math.MaxInt64}},
	} {
		cc := NewCodec(testKey, f)
		text := string(cc.Append(nil, c))
		got, err := NewCodec(testKey, f).Decode(text, c.Kind)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip %+v -> %q -> %+v", c, text, got)
		}
	}
}

// Cursors already handed to clients must keep decoding: the text of a
// cursor is pinned.
func TestCursorWireFormat(t *testing.T) {
	f := viswals.Filter{FirstName: "Ann"}
	for text, want := range map[string]Cursor{
		"AQHP2dUaBIupfyp5l9P5GQm0PAIcURhheKnr": {Kind: KindList, AfterID: 42},
		"AQPP2dUaBIupfwFkBQEBZgdqnw6jJySzW5YEIvxXtaaQ": {Kind: KindLive, HasSnap: true,
			Snap: viswals.Snapshot{Xmin: 100, Xmax: 105, Xip: []uint64{101}}, Pos: viswals.Pos{Xid: 102, ID: 7}},
	} {
		if got := string(NewCodec(testKey, f).Append(nil, want)); got != text {
			t.Errorf("%+v encodes to %q, want %q", want, got, text)
		}
		got, err := NewCodec(testKey, f).Decode(text, want.Kind)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q decodes to %+v, %v; want %+v", text, got, err, want)
		}
	}
}

func TestCursorRejects(t *testing.T) {
	f := viswals.Filter{FirstName: "a"}
	cc := NewCodec(testKey, f)
	good := cc.Append(nil, Cursor{Kind: KindLive, Pos: viswals.Pos{Xid: 5, ID: 9}, HasSnap: true, Snap: viswals.Snapshot{Xmin: 1, Xmax: 9, Xip: []uint64{3}}})
	raw, _ := base64.RawURLEncoding.DecodeString(string(good))

	// Every single-bit change of the payload or the MAC is refused.
	for i := range raw {
		for bit := range 8 {
			b := append([]byte(nil), raw...)
			b[i] ^= 1 << bit
			if _, err := cc.Decode(base64.RawURLEncoding.EncodeToString(b), KindLive); err == nil {
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
		if _, err := cc.Decode(text, KindLive); err == nil && text != string(good) {
			t.Errorf("%s cursor accepted", name)
		}
	}
	if _, err := cc.Decode(string(good), KindList, KindSnapshot); err != ErrBadCursor {
		t.Errorf("a live cursor used as another Kind: %v", err)
	}
	if _, err := NewCodec(testKey, viswals.Filter{FirstName: "b"}).Decode(string(good), KindLive); err != ErrForeignCursor {
		t.Errorf("a cursor of other filters: %v", err)
	}
	if _, err := NewCodec(testKey, viswals.Filter{FirstName: "", LastName: "a"}).Decode(string(good), KindLive); err != ErrForeignCursor {
		t.Errorf("filters moved between fields: %v", err)
	}
	if _, err := NewCodec([]byte("another key, also 32 bytes long!"), f).Decode(string(good), KindLive); err != ErrBadCursor {
		t.Errorf("a cursor of another key: %v", err)
	}
}

// Payloads that are correctly signed but malformed (which only a key
// holder could make) are still refused without a panic.
func TestCursorRejectsSignedGarbage(t *testing.T) {
	cc := NewCodec(testKey, viswals.Filter{})
	sign := func(body []byte) string {
		cc.mac.Reset()
		cc.mac.Write(body)
		return base64.RawURLEncoding.EncodeToString(append(body, cc.mac.Sum(nil)[:macSize]...))
	}
	head := append([]byte{cursorVersion, byte(KindSnapshot)}, cc.fp[:]...)
	for name, fields := range map[string][]byte{
		"no fields":          {},
		"xip out of range":   {10, 5, 1, 7, 1},    // xmin 10, xmax 15, xip 17
		"xip not increasing": {10, 5, 2, 1, 0, 1}, // 11, 11
		"xmax overflow":      append([]byte{10}, append(uvarint(math.MaxUint64), 0, 1)...),
		"huge xip count":     {10, 5, 0xff, 0xff, 0x03, 1},
		"id over int64":      append([]byte{10, 5, 0}, uvarint(math.MaxUint64)...),
		"trailing bytes":     {10, 5, 0, 1, 0},
	} {
		if _, err := cc.Decode(sign(append(append([]byte(nil), head...), fields...)), KindSnapshot); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	badVersion := append([]byte{9, byte(KindList)}, cc.fp[:]...)
	if _, err := cc.Decode(sign(append(badVersion, 1)), KindList); err == nil {
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

func FuzzParseCursor(f *testing.F) {
	cc := NewCodec(testKey, viswals.Filter{})
	f.Add(string(cc.Append(nil, Cursor{Kind: KindList, AfterID: 5})))
	f.Add(string(cc.Append(nil, Cursor{Kind: KindSnapshot, HasSnap: true, Snap: viswals.Snapshot{Xmin: 3, Xmax: 9, Xip: []uint64{4}}})))
	f.Add(string(cc.Append(nil, Cursor{Kind: KindLive, Pos: viswals.Pos{Xid: 3, ID: 1}})))
	f.Add("")
	f.Add("%%%")
	f.Fuzz(func(t *testing.T, text string) {
		for _, kinds := range [][]Kind{{KindList}, {KindSnapshot, KindLive}} {
			c, err := NewCodec(testKey, viswals.Filter{}).Decode(text, kinds...)
			if err != nil {
				if err != ErrBadCursor && err != ErrForeignCursor {
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			// Whatever decodes re-encodes to the same text: a cursor has
			// exactly one spelling.
			if again := string(NewCodec(testKey, viswals.Filter{}).Append(nil, c)); again != text {
				t.Fatalf("%q decodes to %+v which encodes to %q", text, c, again)
			}
		}
	})
}

func BenchmarkCursor(b *testing.B) {
	cc := NewCodec(testKey, viswals.Filter{})
	c := Cursor{Kind: KindLive, Pos: viswals.Pos{Xid: 123456, ID: 987654}}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = cc.Append(buf[:0], c)
	}
}

// A stream writes the same event ids whether a ring change's signed id
// is shared or made afresh, whatever order codecs of other keys and
// filters used it in.
func TestAppendIDSharesOnlyEqualTexts(t *testing.T) {
	t.Parallel()
	other := []byte("another key, also 32 bytes long!")
	pos := viswals.Pos{Xid: 90, ID: 7}
	live := Cursor{Kind: KindLive, Pos: pos}
	withSnap := Cursor{Kind: KindLive, Pos: pos, HasSnap: true, Snap: viswals.Snapshot{Xmin: 80, Xmax: 95, Xip: []uint64{85}}}
	type use struct {
		key    []byte
		filter viswals.Filter
		cursor Cursor
		shared bool
	}
	for _, tc := range []struct {
		name string
		uses []use
	}{
		{"one codec twice", []use{{testKey, viswals.Filter{}, live, true}, {testKey, viswals.Filter{}, live, true}}},
		{"filters alternate", []use{{testKey, viswals.Filter{}, live, true}, {testKey, viswals.Filter{FirstName: "a"}, live, true}, {testKey, viswals.Filter{}, live, true}}},
		{"keys alternate", []use{{testKey, viswals.Filter{}, live, true}, {other, viswals.Filter{}, live, true}, {testKey, viswals.Filter{}, live, true}}},
		{"a cursor with a snapshot is not shared", []use{{testKey, viswals.Filter{}, live, true}, {testKey, viswals.Filter{}, withSnap, true}}},
		{"a row from the store", []use{{testKey, viswals.Filter{}, live, false}, {testKey, viswals.Filter{}, live, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &change{pos: pos}
			s := &Stream{}
			for i, u := range tc.uses {
				cc := NewCodec(u.key, u.filter)
				e := Event{Cursor: u.cursor}
				if u.shared {
					e.shared = c
				}
				got := s.AppendID([]byte("x"), &e, cc)
				want := NewCodec(u.key, u.filter).Append([]byte("x"), u.cursor)
				if !bytes.Equal(got, want) {
					t.Fatalf("use %d: %s, want %s", i, got, want)
				}
			}
		})
	}
}
