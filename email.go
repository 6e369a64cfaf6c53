package viswals

import (
	"strings"
	"unicode/utf8"
)

// MaskEmail returns email as a reader without the right to see emails is
// shown it: the first character of the local part, "***@", then the
// domain, as in a***@example.com. The first character is a whole rune, so
// a multi-byte letter is never cut in half. The split is at the last '@',
// so whatever is shown after it holds no '@' and hence no second local
// part. Without an '@' nothing is shown but "***"; with an empty local
// part, "***@" and the domain.
func MaskEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return "***"
	}
	local, domain := email[:at], email[at+1:]
	var b strings.Builder
	b.Grow(utf8.UTFMax + len("***@") + len(domain))
	if local != "" {
		r, _ := utf8.DecodeRuneInString(local)
		// An invalid first byte decodes to utf8.RuneError and is written as
		// U+FFFD: the byte itself is never shown.
		b.WriteRune(r)
	}
	b.WriteString("***@")
	b.WriteString(domain)
	return b.String()
}
