package rmqtest

import (
	"net/url"
	"os/exec"
	"testing"
)

// User is a broker user of its own for one test, managed with rabbitmqctl
// on the local node: deleting it makes the broker refuse its connections
// (ACCESS_REFUSED), as a broker does for a moment while it restarts.
type User struct {
	t    testing.TB
	name string
	pass string
}

// NewUser adds a user with full permissions on the default vhost and
// returns it with brokerURL rewritten to log in as it. The user is
// deleted when the test ends.
func NewUser(t testing.TB, brokerURL string) (*User, string) {
	t.Helper()
	u := &User{t: t, name: "test-" + sanitize(t.Name()) + "-" + randomHex(4), pass: randomHex(12)}
	u.Add()
	t.Cleanup(func() { _ = exec.Command("rabbitmqctl", "delete_user", u.name).Run() })
	parsed, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatalf("parse broker URL: %v", err)
	}
	parsed.User = url.UserPassword(u.name, u.pass)
	return u, parsed.String()
}

// Add creates the user (again), with its permissions.
func (u *User) Add() {
	u.t.Helper()
	u.ctl("add_user", u.name, u.pass)
	u.ctl("set_permissions", "-p", "/", u.name, ".*", ".*", ".*")
}

// Delete removes the user; the broker closes its connections.
func (u *User) Delete() {
	u.t.Helper()
	u.ctl("delete_user", u.name)
}

func (u *User) ctl(args ...string) {
	u.t.Helper()
	if out, err := exec.Command("rabbitmqctl", args...).CombinedOutput(); err != nil {
		u.t.Fatalf("rabbitmqctl %s (the test needs rabbitmqctl on the broker's machine): %v\n%s", args[0], err, out)
	}
}
