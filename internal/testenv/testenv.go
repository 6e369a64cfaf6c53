// Package testenv decides what a test does when something outside the
// process that it needs is missing: a service that does not answer, or a
// program not on PATH.
//
// With -short (the fast tier) the test is skipped, with a message naming
// what is missing, so that `go test -short ./...` passes on a machine with
// nothing installed. Without -short (the full suite) the test fails: a
// full run that skipped its integration tests would pass without testing.
//
//	testenv.Service(t, "PostgreSQL", "127.0.0.1:5432")
//	chromium := testenv.Program(t, "Chromium", "apt-get install chromium", "chromium", "chromium-browser")
package testenv

import (
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// dialTimeout bounds the probe of a service: a local one answers, or
// refuses, at once.
const dialTimeout = 2 * time.Second

// absent remembers the addresses that did not answer, so that each later
// test of the run does not wait for the probe again.
var absent sync.Map // "network address" -> error

// Service ends the test, as the package comment says, unless the service
// called name accepts a connection at addr (host:port, or a Unix socket
// path starting with "/").
func Service(t testing.TB, name, addr string) {
	t.Helper()
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	key := network + " " + addr
	if err, ok := absent.Load(key); ok {
		Missing(t, name+" at "+addr+" does not answer", err.(error))
		return
	}
	conn, err := net.DialTimeout(network, addr, dialTimeout)
	if err != nil {
		absent.Store(key, err)
		Missing(t, name+" at "+addr+" does not answer", err)
		return
	}
	conn.Close()
}

// Program returns the path of the first of names found on PATH; when none
// is, it ends the test as the package comment says, naming what (a
// program, e.g. "Chromium") and how to install it.
func Program(t testing.TB, what, install string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	Missing(t, what+" is not installed ("+strings.Join(names, ", ")+" not on PATH; "+install+")", nil)
	return ""
}

// Missing ends the test because of what is missing (and err, if not nil):
// a skip under -short, a failure otherwise.
func Missing(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		what += ": " + err.Error()
	}
	if testing.Short() {
		t.Skip("skipping: " + what)
	}
	t.Fatal(what + " (the full suite needs it; go test -short skips what needs a missing service or program)")
}

// SkipShort skips the test under -short, saying why it is left to the
// full suite: it is slow, or it needs something heavy to run.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping with -short: " + why)
	}
}
