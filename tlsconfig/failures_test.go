package tlsconfig

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFailuresLoggedOnceWhenTheyStay(t *testing.T) {
	t.Parallel()
	a, b := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	ok := [sha256.Size]byte{}
	type poll struct {
		failed bool
		bad    [sha256.Size]byte
		log    bool
	}
	tests := []struct {
		name  string
		polls []poll
	}{
		{"a renewal seen half done", []poll{{true, a, false}, {false, ok, false}}},
		{"a bad pair that stays", []poll{{true, a, false}, {true, a, true}, {true, a, false}, {true, a, false}}},
		{"a bad pair replaced by another", []poll{{true, a, false}, {true, a, true}, {true, b, false}, {true, b, true}, {true, b, false}}},
		{"fixed, then bad again", []poll{{true, a, false}, {true, a, true}, {false, ok, false}, {true, a, false}, {true, a, true}}},
		{"changing every poll", []poll{{true, a, false}, {true, b, false}, {true, a, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var f failures
			for i, p := range tt.polls {
				assert.Equal(t, p.log, f.report(p.failed, p.bad), "poll %d", i)
			}
		})
	}
}

// Whatever the files hold, loading them fails with an error or gives a
// certificate; it never panics.
func FuzzParsePair(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN EC PRIVATE KEY-----\nMHc=\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte(""), []byte(""))
	r := &Reloader{certFile: "cert.pem", keyFile: "key.pem", now: time.Now}
	f.Fuzz(func(t *testing.T, certPEM, key []byte) {
		l, err := r.parse(certPEM, key)
		if err == nil && (l.cert == nil || l.cert.Leaf == nil) {
			t.Fatal("no error and no certificate")
		}
	})
}
