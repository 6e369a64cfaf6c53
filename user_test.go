package viswals_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/viswals/viswals"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ms := func(v int64) *time.Time { t := time.UnixMilli(v).UTC(); return &t }
	id := func(v int64) *int64 { return &v }
	good := func() viswals.User {
		return viswals.User{ID: 1, FirstName: "Zoë", LastName: "Smith, Jr.", Email: "a@b", CreatedAt: *ms(0)}
	}
	tests := []struct {
		name   string
		change func(u *viswals.User)
		want   string // "" when valid; otherwise a part of the message
	}{
		{name: "minimal", change: func(*viswals.User) {}},
		{name: "all optional set, self parent", change: func(u *viswals.User) { u.DeletedAt, u.MergedAt, u.ParentUserID = ms(5), ms(6), id(1) }},
		{name: "empty names", change: func(u *viswals.User) { u.FirstName, u.LastName = "", "" }},
		{name: "id zero", change: func(u *viswals.User) { u.ID = 0 }, want: "id must be"},
		{name: "negative id", change: func(u *viswals.User) { u.ID = -4 }, want: "id must be"},
		{name: "no @", change: func(u *viswals.User) { u.Email = "ab" }, want: "email_address"},
		{name: "two @", change: func(u *viswals.User) { u.Email = "a@b@c" }, want: "email_address"},
		{name: "empty local part", change: func(u *viswals.User) { u.Email = "@b" }, want: "email_address"},
		{name: "empty domain", change: func(u *viswals.User) { u.Email = "a@" }, want: "email_address"},
		{name: "empty email", change: func(u *viswals.User) { u.Email = "" }, want: "email_address"},
		{name: "huge email", change: func(u *viswals.User) { u.Email = strings.Repeat("a", 400) + "@b" }, want: "email_address is longer"},
		{name: "invalid utf-8 name", change: func(u *viswals.User) { u.FirstName = "\xff" }, want: "first_name is not valid UTF-8"},
		{name: "NUL in name", change: func(u *viswals.User) { u.LastName = "a\x00b" }, want: "last_name contains a NUL"},
		{name: "huge name", change: func(u *viswals.User) { u.LastName = strings.Repeat("x", viswals.MaxNameBytes+1) }, want: "last_name is longer"},
		{name: "created before 1970", change: func(u *viswals.User) { u.CreatedAt = *ms(-1) }, want: "created_at"},
		{name: "deleted after 9999", change: func(u *viswals.User) { u.DeletedAt = ms(viswals.MaxUnixMilli + 1) }, want: "deleted_at"},
		{name: "merged before 1970", change: func(u *viswals.User) { u.MergedAt = ms(-5) }, want: "merged_at"},
		{name: "parent zero", change: func(u *viswals.User) { u.ParentUserID = id(0) }, want: "parent_user_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := good()
			tt.change(&u)
			err := u.Validate()
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.want)
			assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
		})
	}
}

func TestVersionLess(t *testing.T) {
	t.Parallel()
	v := func(load, line int64) viswals.Version { return viswals.Version{Load: load, Line: line} }
	assert.True(t, v(1, 9).Less(v(2, 1)), "a later load wins whatever the line")
	assert.True(t, v(1, 1).Less(v(1, 2)), "a later line of one load wins")
	assert.False(t, v(1, 2).Less(v(1, 2)))
	assert.False(t, v(2, 1).Less(v(1, 9)))
}

func TestVersionCheckNotAhead(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	skew := 5 * time.Minute
	tests := []struct {
		name    string
		load    int64
		wantErr string
	}{
		{name: "now", load: now.UnixNano()},
		{name: "the past", load: 1},
		{name: "zero", load: 0},
		{name: "negative", load: -1 << 62},
		{name: "exactly the skew ahead", load: now.Add(skew).UnixNano()},
		{name: "just beyond the skew", load: now.Add(skew).UnixNano() + 1, wantErr: "version load 2026-01-02T03:09:05Z is 5m0s ahead of the consumer's clock, more than the 5m0s allowed"},
		{name: "a day ahead", load: now.Add(24 * time.Hour).UnixNano(), wantErr: "is 24h0m0s ahead"},
		{name: "MaxInt64", load: 1<<63 - 1, wantErr: "version load 2262-04-11T23:47:16Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := viswals.Version{Load: tt.load, Line: 1}.CheckNotAhead(now, skew)
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.wantErr)
			assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
		})
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("get user: %w", viswals.Errorf(viswals.ENOTFOUND, "user %d not found", 7))
	assert.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(err))
	assert.Equal(t, "user 7 not found", viswals.ErrorMessage(err))

	plain := errors.New("pq: secret detail")
	assert.Equal(t, viswals.EINTERNAL, viswals.ErrorCode(plain))
	assert.Equal(t, "internal error", viswals.ErrorMessage(plain), "internals never reach clients")
	assert.Equal(t, "", viswals.ErrorCode(nil))
}
