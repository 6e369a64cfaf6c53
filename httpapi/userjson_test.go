package httpapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/viswals/viswals"
)

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote\`, "<a&b>", "\x00\x1f\x7f", "\u2028\u2029", "é日本", "\xff\xfe", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("appendJSONString(%q) = %s, encoding/json gives %s", s, got, want)
		}
	})
}

// appendUser writes what encoding/json writes for viswals.User once times
// are UTC milliseconds, which is all the API ever holds.
func TestAppendUserMatchesEncodingJSON(t *testing.T) {
	ms := func(v int64) *time.Time { t := time.UnixMilli(v).UTC(); return &t }
	parent := int64(99)
	for _, u := range []viswals.User{
		{ID: 1, FirstName: "A", LastName: "B", Email: "a@b", CreatedAt: *ms(0)},
		{ID: 1<<63 - 1, FirstName: "Zoë <b>", LastName: "O'Neil \"x\"", Email: "z@x.io",
			CreatedAt: *ms(1700000000001), DeletedAt: ms(1700000000010), MergedAt: ms(1700000000100), ParentUserID: &parent},
		{ID: 5, CreatedAt: *ms(viswals.MaxUnixMilli)},
	} {
		want, _ := json.Marshal(u)
		if got := appendUser(nil, &u); string(got) != string(want) {
			t.Errorf("appendUser\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendTime(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(1700000000123), int64(456789))
	f.Add(int64(viswals.MaxUnixMilli), int64(0))
	f.Add(int64(-62135596800001), int64(0))
	f.Fuzz(func(t *testing.T, ms, ns int64) {
		tm := time.UnixMilli(ms).Add(time.Duration(ns % 1e6))
		want := `"` + tm.UTC().Format(timeLayout) + `"`
		if got := string(appendTime(nil, tm)); got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	})
}
