package viswals

import "strings"

// MaxFilterBytes bounds each prefix of a Filter.
const MaxFilterBytes = 256

// Filter selects users by name prefixes, compared case-insensitively
// (through Fold) and combined with AND; an empty prefix matches any name.
// Every character of a prefix is literal: '%', '_' and '\' are no
// wildcards.
type Filter struct {
	FirstName string
	LastName  string
}

// Validate returns an EINVALID error naming the first prefix no store can
// compare: longer than MaxFilterBytes, not UTF-8 (Fold would turn it into
// U+FFFD and match other names) or holding a NUL (Postgres text cannot).
func (f Filter) Validate() error {
	if err := validText("first_name", f.FirstName, MaxFilterBytes); err != nil {
		return err
	}
	return validText("last_name", f.LastName, MaxFilterBytes)
}

// Match reports whether a user named first and last matches f. Folding
// is idempotent, so callers matching many names fold f (Folded) and keep
// the names folded: Match then allocates nothing.
func (f Filter) Match(first, last string) bool {
	return strings.HasPrefix(Fold(first), Fold(f.FirstName)) &&
		strings.HasPrefix(Fold(last), Fold(f.LastName))
}

// Folded returns f with both prefixes folded; it matches the same users.
func (f Filter) Folded() Filter {
	return Filter{FirstName: Fold(f.FirstName), LastName: Fold(f.LastName)}
}

// Fold is the one case folding of names. Postgres keeps Fold of each name
// in an indexed column and compares it with Fold of the prefix; the live
// changefeed compares the same way in memory. Were there two foldings, a
// stream would show a user in its snapshot and miss it live.
func Fold(s string) string { return strings.ToLower(s) }
