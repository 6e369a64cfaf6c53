package auth

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
)

func TestParseRole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Role
		ok   bool
	}{
		{"reader", RoleReader, true},
		{"pii", RolePII, true},
		{"admin", RoleAdmin, true},
		{"Admin", RoleNone, false}, // exact names only
		{" reader", RoleNone, false},
		{"none", RoleNone, false},
		{"", RoleNone, false},
		{"root", RoleNone, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRole(tt.in)
			assert.Equal(t, tt.want, got)
			if tt.ok {
				require.NoError(t, err)
				assert.Equal(t, tt.in, got.String())
			} else {
				assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
			}
		})
	}
}

func TestRoleRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		role                  Role
		read, emails, operate bool
		shows                 string
	}{
		{RoleNone, false, false, false, "a***@example.com"},
		{RoleReader, true, false, false, "a***@example.com"},
		{RolePII, true, true, false, "ada@example.com"},
		{RoleAdmin, true, true, true, "ada@example.com"},
		{Role(9), false, false, false, "a***@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.role.String(), func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.read, tt.role.MayRead(), "MayRead")
			assert.Equal(t, tt.emails, tt.role.SeesEmails(), "SeesEmails")
			assert.Equal(t, tt.operate, tt.role.MayOperate(), "MayOperate")
			assert.Equal(t, tt.shows, tt.role.ShowEmail("ada@example.com"))
		})
	}
}

func TestRoleText(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(struct{ R Role }{RolePII})
	require.NoError(t, err)
	assert.JSONEq(t, `{"R":"pii"}`, string(b))
	var v struct{ R Role }
	require.NoError(t, json.Unmarshal([]byte(`{"R":"admin"}`), &v))
	assert.Equal(t, RoleAdmin, v.R)
	assert.Error(t, json.Unmarshal([]byte(`{"R":"boss"}`), &v))
	_, err = json.Marshal(struct{ R Role }{RoleNone})
	assert.Error(t, err, "an invalid role is never written as if it were one")
}

func TestPrincipalLogValue(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "principal", Principal{Name: "ci", Role: RoleReader, Kind: KindAPIKey})
	assert.Contains(t, buf.String(), "principal.name=ci principal.role=reader principal.kind=apikey")
}

func TestForbidden(t *testing.T) {
	t.Parallel()
	err := Forbidden(Principal{Name: "ci", Role: RoleReader}, "metrics")
	assert.Equal(t, viswals.EFORBIDDEN, viswals.ErrorCode(err))
	assert.Equal(t, "role reader may not see metrics", viswals.ErrorMessage(err))
}
