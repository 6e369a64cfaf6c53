package httpapi

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/viswals/viswals"
)

// The user is encoded by hand rather than with encoding/json: it is the
// whole cost of GET /users/{id} and of every SSE event, and appending into
// a pooled buffer needs no reflection and no allocation. The output is
// byte-for-byte what encoding/json would produce for the same fields
// (checked by FuzzAppendJSONString), except that times are always UTC.

// timeLayout is RFC 3339 with milliseconds when there are any: the input
// carries unix milliseconds, so finer digits would be noise.
const timeLayout = "2006-01-02T15:04:05.999Z07:00"

// appendUser appends u as the API's user JSON object.
func appendUser(b []byte, u *viswals.User) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, u.ID, 10)
	b = append(b, `,"first_name":`...)
	b = appendJSONString(b, u.FirstName)
	b = append(b, `,"last_name":`...)
	b = appendJSONString(b, u.LastName)
	b = append(b, `,"email_address":`...)
	b = appendJSONString(b, u.Email)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, u.CreatedAt)
	b = append(b, `,"deleted_at":`...)
	b = appendTimePtr(b, u.DeletedAt)
	b = append(b, `,"merged_at":`...)
	b = appendTimePtr(b, u.MergedAt)
	b = append(b, `,"parent_user_id":`...)
	if u.ParentUserID == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, *u.ParentUserID, 10)
	}
	return append(b, '}')
}

// appendTime appends t as a quoted RFC 3339 UTC time. Digits are written
// by hand: time.AppendFormat is general, and was a large share of the cost
// of a cached GET /users/{id} (docs/benchmarks.md).
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, timeLayout)
		return append(b, '"')
	}
	hour, min, sec := t.Clock()
	b = append(b, '"')
	b = append4(b, year)
	b = append(b, '-')
	b = append2(b, int(month))
	b = append(b, '-')
	b = append2(b, day)
	b = append(b, 'T')
	b = append2(b, hour)
	b = append(b, ':')
	b = append2(b, min)
	b = append(b, ':')
	b = append2(b, sec)
	// Milliseconds with trailing zeros trimmed, as ".999" formats them.
	if ms := t.Nanosecond() / 1e6; ms != 0 {
		d := [3]byte{byte('0' + ms/100), byte('0' + ms/10%10), byte('0' + ms%10)}
		n := 3
		for d[n-1] == '0' {
			n--
		}
		b = append(b, '.')
		b = append(b, d[:n]...)
	}
	return append(b, 'Z', '"')
}

func append2(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }

func append4(b []byte, v int) []byte {
	return append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}

func appendTimePtr(b []byte, t *time.Time) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	return appendTime(b, *t)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way encoding/json does:
// control characters, quotes, backslashes and the HTML-sensitive <, >, &
// escaped, invalid UTF-8 replaced by U+FFFD, and U+2028/U+2029 escaped so
// the output is also valid JavaScript.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
