package viswals_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"

	"github.com/viswals/viswals"
)

func TestFilter_Validate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filter viswals.Filter
		want   string // "" when valid
	}{
		{viswals.Filter{}, ""},
		{viswals.Filter{FirstName: "Zoë", LastName: "%_\\"}, ""},
		{viswals.Filter{FirstName: strings.Repeat("a", viswals.MaxFilterBytes)}, ""},
		{viswals.Filter{FirstName: strings.Repeat("a", viswals.MaxFilterBytes+1)}, "first_name is longer than 256 bytes"},
		{viswals.Filter{LastName: "\xff"}, "last_name is not valid UTF-8"},
		{viswals.Filter{FirstName: "a\x00b"}, "first_name contains a NUL byte"},
	}
	for _, tt := range tests {
		err := tt.filter.Validate()
		if tt.want == "" {
			assert.NoError(t, err, "%+v", tt.filter)
			continue
		}
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%+v", tt.filter)
		assert.Equal(t, tt.want, viswals.ErrorMessage(err))
	}
}

func TestFilter_Match(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filter      viswals.Filter
		first, last string
		want        bool
	}{
		{viswals.Filter{}, "Ann", "Lee", true},
		{viswals.Filter{FirstName: "an"}, "Ann", "Lee", true},
		{viswals.Filter{FirstName: "AN"}, "ann", "Lee", true},
		{viswals.Filter{FirstName: "an", LastName: "L"}, "Ann", "Lee", true},
		{viswals.Filter{FirstName: "an", LastName: "x"}, "Ann", "Lee", false},
		{viswals.Filter{FirstName: "nn"}, "Ann", "Lee", false},
		{viswals.Filter{FirstName: "ZOË"}, "zoë", "", true},
		{viswals.Filter{FirstName: "a%"}, "abc", "", false},
		{viswals.Filter{LastName: "Lee-"}, "Ann", "Lee", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.filter.Match(tt.first, tt.last), "%+v %q %q", tt.filter, tt.first, tt.last)
		assert.Equal(t, tt.want, tt.filter.Folded().Match(viswals.Fold(tt.first), viswals.Fold(tt.last)), "folded %+v", tt.filter)
	}
}

// Matching folded values is the same as matching raw ones only if folding
// twice changes nothing.
func TestFold_Idempotent(t *testing.T) {
	t.Parallel()
	for r := rune(0); r <= unicode.MaxRune; r++ {
		once := viswals.Fold(string(r))
		if twice := viswals.Fold(once); twice != once {
			t.Fatalf("Fold(%U): %q, folded again %q", r, once, twice)
		}
	}
}

func TestSnapshot_Visible(t *testing.T) {
	t.Parallel()
	snap := viswals.Snapshot{Xmin: 10, Xmax: 20, Xip: []uint64{10, 14, 15}}
	for xid, want := range map[uint64]bool{
		3: true, 9: true, 10: false, 11: true, 13: true, 14: false, 15: false, 16: true, 19: true, 20: false, 21: false,
	} {
		assert.Equal(t, want, snap.Visible(xid), "xid %d", xid)
	}
}

func TestPos_Less(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p, q viswals.Pos
		want bool
	}{
		{viswals.Pos{Xid: 1, ID: 9}, viswals.Pos{Xid: 2, ID: 1}, true},
		{viswals.Pos{Xid: 2, ID: 1}, viswals.Pos{Xid: 2, ID: 2}, true},
		{viswals.Pos{Xid: 2, ID: 2}, viswals.Pos{Xid: 2, ID: 2}, false},
		{viswals.Pos{Xid: 3}, viswals.Pos{Xid: 2, ID: 9}, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.p.Less(tt.q), "%v < %v", tt.p, tt.q)
	}
}
