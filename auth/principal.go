package auth

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/viswals/viswals"
)

// Role is what a principal may see. The zero Role allows nothing.
type Role uint8

// The roles, in increasing order of what they allow: each allows all that
// the ones before it do.
const (
	RoleNone   Role = iota // no role: allowed nothing
	RoleReader             // users, with emails masked
	RolePII                // users, with emails decrypted
	RoleAdmin              // as RolePII, plus metrics and operators' views
)

var roleNames = [...]string{RoleNone: "none", RoleReader: "reader", RolePII: "pii", RoleAdmin: "admin"}

// ParseRole returns the Role named s: "reader", "pii" or "admin", exactly.
func ParseRole(s string) (Role, error) {
	switch s {
	case "reader":
		return RoleReader, nil
	case "pii":
		return RolePII, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, viswals.Errorf(viswals.EINVALID, "unknown role %q: want reader, pii or admin", truncate(s, 32))
}

// String returns the role's name, as ParseRole takes it.
func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// MarshalText writes the role's name, so roles read as words in JSON and logs.
func (r Role) MarshalText() ([]byte, error) {
	if !r.Valid() {
		return nil, fmt.Errorf("auth: cannot marshal invalid role %d", uint8(r))
	}
	return []byte(r.String()), nil
}

// UnmarshalText parses a role name as ParseRole does.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Valid reports whether r is one of reader, pii and admin.
func (r Role) Valid() bool { return RoleReader <= r && r <= RoleAdmin }

// MayRead reports whether r may read users at all (emails as ShowEmail
// shows them).
func (r Role) MayRead() bool { return r.Valid() }

// SeesEmails reports whether r sees users' emails decrypted.
func (r Role) SeesEmails() bool { return r == RolePII || r == RoleAdmin }

// MayOperate reports whether r may see metrics and operators' views.
func (r Role) MayOperate() bool { return r == RoleAdmin }

// ShowEmail returns email as r may see it: whole for roles that see
// emails, masked by viswals.MaskEmail for the others.
func (r Role) ShowEmail(email string) string {
	if r.SeesEmails() {
		return email
	}
	return viswals.MaskEmail(email)
}

// Kind says how a principal proved who it is.
type Kind string

// The kinds of credential.
const (
	KindAPIKey Kind = "apikey" // an API key from the keys file
	KindOIDC   Kind = "oidc"   // a JWT from the OIDC issuer
)

// Principal is the caller, once authenticated.
type Principal struct {
	Name string // the key's name, or the token's subject
	Role Role
	Kind Kind
	// Expires is when the credential stops being valid: a JWT's exp, a
	// session's expiry. Zero for API keys, which last until revoked.
	Expires time.Time
}

// LogValue logs the principal as name, role and kind: never a credential.
func (p Principal) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", p.Name),
		slog.String("role", p.Role.String()),
		slog.String("kind", string(p.Kind)),
	)
}

// Forbidden returns the EFORBIDDEN error for p asking for what its role
// does not allow; what says what was asked for ("metrics").
func Forbidden(p Principal, what string) error {
	return viswals.Errorf(viswals.EFORBIDDEN, "role %s may not see %s", p.Role, what)
}

// truncate cuts s to at most n bytes for an error message, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
