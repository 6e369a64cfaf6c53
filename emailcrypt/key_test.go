package emailcrypt

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/viswals/viswals"
)

// testKey is a fixed random key (from openssl rand -hex 32).
var testKey = mustHex("3f8a1c9e27b04d6a95e1c7f203b8d46a1e9c57f0a2b3d4c68e7f9012a3b4c5d6")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	good := testKey
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" means the key must parse to good
	}{
		{"base64 std padded", base64.StdEncoding.EncodeToString(good), ""},
		{"base64 std unpadded", base64.RawStdEncoding.EncodeToString(good), ""},
		{"base64 url padded", base64.URLEncoding.EncodeToString(good), ""},
		{"base64 url unpadded", base64.RawURLEncoding.EncodeToString(good), ""},
		{"hex lower", hex.EncodeToString(good), ""},
		{"hex upper", strings.ToUpper(hex.EncodeToString(good)), ""},
		{"surrounding whitespace", "  " + base64.StdEncoding.EncodeToString(good) + "\n", ""},
		{"empty", "", "not set"},
		{"blank", " \t\n", "not set"},
		{"too short base64", base64.StdEncoding.EncodeToString(good[:16]), "decodes (as base64) to 16 bytes"},
		{"too long base64", base64.StdEncoding.EncodeToString(append(good, 1)), "decodes (as base64) to 33 bytes"},
		{"too short hex", hex.EncodeToString(good[:31]), "decodes (as hex) to 31 bytes"},
		{"too long hex", hex.EncodeToString(append(good, 1)), "decodes (as hex) to 33 bytes"},
		{"odd hex", hex.EncodeToString(good)[1:], "odd number of hex digits (63)"},
		{"garbage", "not a key!", "neither base64 nor 64 hex digits"},
		{"hex with a bad digit", "zz" + hex.EncodeToString(good)[2:], "not all are hex digits"},
		{"all zero", base64.StdEncoding.EncodeToString(make([]byte, 32)), "only 1 distinct byte values"},
		{"all zero unpadded base64, all hex letters", base64.RawStdEncoding.EncodeToString(make([]byte, 32)), "only 1 distinct byte values"},
		{"repeated short secret", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1, 2, 3, 4}, 8)), "only 4 distinct"},
		{"counting sequence", hex.EncodeToString(countingKey()), "counting sequence"},
		{"password", base64.StdEncoding.EncodeToString([]byte("correct horse battery staple!!XY")), "printable text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, err := ParseKey(tt.in)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, good, key)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Contains(t, err.Error(), "generate one with: openssl rand -base64 32")
			assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
			if strings.TrimSpace(tt.in) != "" {
				assert.NotContains(t, err.Error(), strings.TrimSpace(tt.in), "an error must not echo the key")
			}
		})
	}
}

func countingKey() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// Random keys must never be refused as weak: the weakness tests are
// meant to have a negligible false-positive rate.
func TestParseKeyAcceptsRandomKeys(t *testing.T) {
	t.Parallel()
	for range 10000 {
		k := make([]byte, 32)
		rand.Read(k)
		_, err := ParseKey(base64.StdEncoding.EncodeToString(k))
		require.NoError(t, err)
	}
}

func TestParseKeyring(t *testing.T) {
	t.Parallel()
	k1 := base64.StdEncoding.EncodeToString(testKey)
	k2 := hex.EncodeToString(otherKey())
	short := base64.StdEncoding.EncodeToString(testKey[:16])
	ok := []struct {
		name, key, keys string
		primary         string
		ids             []string
	}{
		{"one key", k1, "", "v1", []string{"v1"}},
		{"one key, file line end", k1 + "\n", "", "v1", []string{"v1"}},
		{"list", "", "k2:" + k2 + ", v1:" + k1, "k2", []string{"k2", "v1"}},
		{"list of one", "", "only:" + k1, "only", []string{"only"}},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ring, err := ParseKeyring(tt.key, tt.keys)
			require.NoError(t, err)
			assert.Equal(t, tt.primary, ring.PrimaryKeyID())
			assert.Equal(t, tt.ids, ring.KeyIDs())
		})
	}
	bad := []struct {
		name, key, keys, want string
	}{
		{"neither", "", "", "neither ENCRYPTION_KEY nor ENCRYPTION_KEYS"},
		{"both", k1, "v1:" + k1, "both ENCRYPTION_KEY and ENCRYPTION_KEYS"},
		{"empty list", "", " , ", "entry 1 is empty"},
		{"trailing comma", "", "a:" + k1 + ",", "entry 2 is empty"},
		{"no id", "", k1, "entry 1 has no id"},
		{"bad id", "", "a-b:" + k1, "entry 1: the key id must be"},
		{"empty id", "", ":" + k1, "entry 1: the key id must be"},
		{"duplicate id", "", "a:" + k1 + ",b:" + k2 + ",a:" + k2, `key id "a" appears twice (entries 1 and 3)`},
		{"short key", "", "a:" + k1 + ",b:" + short, `entry 2 (id "b") decodes (as base64) to 16 bytes`},
		{"bad encoding", "", "a:" + k1 + ",b:@@@@", `entry 2 (id "b") is neither base64 nor 64 hex digits`},
		{"missing key", "", "a:", `entry 1 (id "a") is not set`},
		{"weak key", "", "a:" + strings.Repeat("00", 32), `entry 1 (id "a") is weak`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseKeyring(tt.key, tt.keys)
			require.Error(t, err)
			assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
			assert.Contains(t, err.Error(), tt.want)
			for _, secret := range []string{k1, k2, short, k1[:12], k2[:12]} {
				assert.NotContains(t, err.Error(), secret, "no key material in errors")
			}
		})
	}
}

// FuzzParseKeyring: any setting parses without panic, and errors never
// hold a key that was in it.
func FuzzParseKeyring(f *testing.F) {
	k1 := base64.StdEncoding.EncodeToString(testKey)
	for _, s := range []string{"", "v1:" + k1, "a:" + k1 + ",b:" + k1, ",", "::", "a:b:c", k1} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, keys string) {
		ring, err := ParseKeyring("", keys)
		if err == nil {
			if ring.PrimaryKeyID() == "" {
				t.Fatal("a keyring without primary")
			}
			return
		}
		if strings.Contains(err.Error(), k1) {
			t.Fatalf("error holds the key: %v", err)
		}
	})
}
