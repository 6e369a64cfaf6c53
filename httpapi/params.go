package httpapi

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/changefeed"
)

// Bounds on query parameters. Every parameter is checked before anything
// reaches a store, and a bad one gets a 400 that names it.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
	// maxStreamLimit bounds limit on /users/sse, where it counts events
	// over a stream's whole life, not rows of one page.
	maxStreamLimit = 1_000_000_000
	maxQueryLen    = 8192
)

// listParams are the validated query of GET /users.
type listParams struct {
	filter  viswals.Filter
	limit   int
	afterID int64
}

// streamParams are the validated query of GET /users/sse.
type streamParams struct {
	filter viswals.Filter
	limit  int // 0: unlimited
	resume *changefeed.Cursor
}

// parseListParams validates the query of GET /users.
func parseListParams(rawQuery string, key []byte) (listParams, *changefeed.Codec, error) {
	q, err := parseQuery(rawQuery)
	if err != nil {
		return listParams{}, nil, err
	}
	var p listParams
	if p.filter, err = parseFilter(q); err != nil {
		return listParams{}, nil, err
	}
	if p.limit, err = parseLimit(q, defaultListLimit, maxListLimit); err != nil {
		return listParams{}, nil, err
	}
	codec := changefeed.NewCodec(key, p.filter)
	text, ok, err := single(q, "cursor")
	if err != nil {
		return listParams{}, nil, err
	}
	if ok {
		c, err := codec.Decode(text, changefeed.KindList)
		if err != nil {
			return listParams{}, nil, cursorError("cursor", err)
		}
		p.afterID = c.AfterID
	}
	return p, codec, nil
}

// parseStreamParams validates the query of GET /users/sse. The resume
// position comes from the Last-Event-ID header, which a reconnecting
// EventSource sends, or else from the last_event_id parameter; the header
// wins because it is the newer of the two when a page reconnects.
func parseStreamParams(rawQuery, lastEventID string, key []byte) (streamParams, *changefeed.Codec, error) {
	q, err := parseQuery(rawQuery)
	if err != nil {
		return streamParams{}, nil, err
	}
	var p streamParams
	if p.filter, err = parseFilter(q); err != nil {
		return streamParams{}, nil, err
	}
	if p.limit, err = parseLimit(q, 0, maxStreamLimit); err != nil {
		return streamParams{}, nil, err
	}
	codec := changefeed.NewCodec(key, p.filter)
	name, text := "Last-Event-ID", lastEventID
	if text == "" {
		var ok bool
		if text, ok, err = single(q, "last_event_id"); err != nil {
			return streamParams{}, nil, err
		} else if ok {
			name = "last_event_id"
		}
	}
	if text != "" {
		c, err := codec.Decode(text, changefeed.KindSnapshot, changefeed.KindLive)
		if err != nil {
			return streamParams{}, nil, cursorError(name, err)
		}
		p.resume = &c
	}
	return p, codec, nil
}

func parseQuery(raw string) (url.Values, error) {
	if len(raw) > maxQueryLen {
		return nil, viswals.Errorf(viswals.EINVALID, "query string is longer than %d bytes", maxQueryLen)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		// ParseQuery keeps every pair it could read. A bad pair (a broken
		// %-escape, or a ';', which Go does not take as a separator) is
		// an error only when it is one of ours; unknown parameters are
		// ignored, malformed or not.
		for pair := range strings.SplitSeq(raw, "&") {
			key, value, _ := strings.Cut(pair, "=")
			k, kerr := url.QueryUnescape(key)
			_, verr := url.QueryUnescape(value)
			if kerr != nil || !knownParam(k) {
				continue
			}
			if verr != nil || strings.Contains(pair, ";") {
				return nil, viswals.Errorf(viswals.EINVALID, "%s is malformed (a bad %%-escape or a ';')", k)
			}
		}
	}
	return q, nil
}

func knownParam(k string) bool {
	switch k {
	case "first_name", "last_name", "limit", "cursor", "last_event_id":
		return true
	}
	return false
}

// single returns the one value of parameter name; a repeated parameter is
// refused rather than silently picking one.
func single(q url.Values, name string) (string, bool, error) {
	vs, ok := q[name]
	switch {
	case !ok:
		return "", false, nil
	case len(vs) > 1:
		return "", false, viswals.Errorf(viswals.EINVALID, "%s is given more than once", name)
	}
	return vs[0], true, nil
}

func parseFilter(q url.Values) (viswals.Filter, error) {
	var f viswals.Filter
	var err error
	if f.FirstName, _, err = single(q, "first_name"); err != nil {
		return f, err
	}
	if f.LastName, _, err = single(q, "last_name"); err != nil {
		return f, err
	}
	return f, f.Validate()
}

// parseLimit reads limit: decimal digits only, within [1, max]; absent
// means def.
func parseLimit(q url.Values, def, max int) (int, error) {
	v, ok, err := single(q, "limit")
	if err != nil || !ok {
		return def, err
	}
	if n, ok := parseDecimal(v); ok && n >= 1 && n <= int64(max) {
		return int(n), nil
	}
	return 0, viswals.Errorf(viswals.EINVALID, "limit must be an integer between 1 and %d", max)
}

// parseDecimal parses a non-negative int64 written as plain digits: no
// sign, no spaces, no underscores, at most 19 digits.
func parseDecimal(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func cursorError(name string, err error) error {
	if err == changefeed.ErrForeignCursor {
		return viswals.Errorf(viswals.EINVALID, "invalid %s: it was made for other filters", name)
	}
	return viswals.Errorf(viswals.EINVALID, "invalid %s", name)
}
