package viswals_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/viswals/viswals"
)

func TestMaskEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		email, want string
	}{
		{"alice@example.com", "a***@example.com"},
		{"a@b", "a***@b"},
		{"Zoë.smith@example.org", "Z***@example.org"},
		{"élise@exemple.fr", "é***@exemple.fr"},          // two-byte rune kept whole
		{"😀smile@example.com", "😀***@example.com"},       // four-byte rune kept whole
		{"a@b@c.com", "a***@c.com"},                      // split at the last '@'
		{"@example.com", "***@example.com"},              // empty local part
		{"alice@", "a***@"},                              // empty domain
		{"no-at-sign", "***"},                            // nothing to show
		{"", "***"},                                      // empty
		{"\xffbad@example.com", "\uFFFD***@example.com"}, // invalid byte never echoed
		{"a***@example.com", "a***@example.com"},         // masking is idempotent
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, viswals.MaskEmail(tt.email))
		})
	}
}

// FuzzMaskEmail checks the rule for any input: the result is the first
// rune of the local part, "***@" and the domain, and nothing else of the
// local part.
func FuzzMaskEmail(f *testing.F) {
	for _, s := range []string{"alice@example.com", "", "@", "a@b@c", "\xff@x", "é@é", "no-at"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, email string) {
		got := viswals.MaskEmail(email)
		at := strings.LastIndexByte(email, '@')
		if at < 0 {
			if got != "***" {
				t.Fatalf("MaskEmail(%q) = %q, want ***", email, got)
			}
			return
		}
		local, domain := email[:at], email[at+1:]
		want := "***@" + domain
		if local != "" {
			r, _ := utf8.DecodeRuneInString(local)
			want = string(r) + want
		}
		if got != want {
			t.Fatalf("MaskEmail(%q) = %q, want %q", email, got, want)
		}
		if !utf8.ValidString(got[:len(got)-len(domain)]) {
			t.Fatalf("MaskEmail(%q) = %q: the shown part of the local part is not valid UTF-8", email, got)
		}
		if len(got) > len(email)+len("***")+utf8.UTFMax {
			t.Fatalf("MaskEmail(%q) = %q: longer than the bound", email, got)
		}
	})
}
