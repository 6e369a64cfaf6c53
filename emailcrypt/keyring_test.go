package emailcrypt

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/viswals/viswals"
)

func newRing(t testing.TB) *Keyring {
	t.Helper()
	k, err := New(testKey)
	require.NoError(t, err)
	return k
}

func otherKey() []byte {
	k := bytes.Clone(testKey)
	k[0] ^= 0xff
	return k
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	k := newRing(t)
	for _, email := range []string{
		"ada@example.com",
		"a@b",
		"Zoë.Ñúñez+tag@exämple.рф",
		"用户@例子.广告",
		"\"quoted local\"@example.org",
		strings.Repeat("x", 300) + "@example.com",
		"",
	} {
		sealed, err := k.Encrypt(7, email)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(sealed, "2:v1:"), sealed)
		if email != "" {
			assert.NotContains(t, sealed, email)
		}
		got, err := k.Decrypt(7, sealed)
		require.NoError(t, err)
		assert.Equal(t, email, got)
	}
}

func TestEncryptUsesFreshNonces(t *testing.T) {
	t.Parallel()
	k := newRing(t)
	seen := map[string]bool{}
	nonces := map[string]bool{}
	for range 1000 {
		s, err := k.Encrypt(7, "ada@example.com")
		require.NoError(t, err)
		require.False(t, seen[s], "the same plaintext must seal differently every time")
		seen[s] = true
		raw, err := b64.DecodeString(strings.TrimPrefix(s, "2:v1:"))
		require.NoError(t, err)
		nonce := string(raw[:12])
		require.False(t, nonces[nonce], "nonce repeated")
		nonces[nonce] = true
	}
}

// Changing any character of the sealed string, key id included, must
// make Decrypt fail rather than return something else.
func TestDecryptDetectsTampering(t *testing.T) {
	t.Parallel()
	k := newRing(t)
	sealed, err := k.Encrypt(7, "ada@example.com")
	require.NoError(t, err)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/:v"
	for i := range len(sealed) {
		for _, c := range []byte(alphabet) {
			if c == sealed[i] {
				continue
			}
			tampered := sealed[:i] + string(c) + sealed[i+1:]
			got, err := k.Decrypt(7, tampered)
			require.Error(t, err, "position %d changed to %q decrypted to %q", i, c, got)
			require.ErrorIs(t, err, ErrDecrypt)
			require.NotContains(t, err.Error(), "ada@example.com")
		}
	}
	for _, cut := range []int{1, 5, len(sealed) - 1} {
		_, err := k.Decrypt(7, sealed[:cut])
		require.ErrorIs(t, err, ErrDecrypt, "truncated to %d", cut)
	}
	_, err = k.Decrypt(7, sealed+"A")
	require.ErrorIs(t, err, ErrDecrypt, "extended")
}

func TestDecryptWithWrongKeyFails(t *testing.T) {
	t.Parallel()
	sealed, err := newRing(t).Encrypt(7, "ada@example.com")
	require.NoError(t, err)
	wrong, err := New(otherKey())
	require.NoError(t, err)
	_, err = wrong.Decrypt(7, sealed)
	require.ErrorIs(t, err, ErrDecrypt)
	assert.Contains(t, err.Error(), "authentication failed")
}

func TestDecryptErrors(t *testing.T) {
	t.Parallel()
	k := newRing(t)
	tests := []struct{ name, in, want string }{
		{"empty", "", "no key id prefix"},
		{"no prefix", "ada@example.com", "no key id prefix"},
		{"unknown key id", "v9:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", `unknown key id "v9"`},
		{"plaintext-looking prefix is not echoed", "ada@example.com:xyz", "malformed key id"},
		{"not base64", "v1:!!!!", "not base64"},
		{"padded base64", "v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "not base64"},
		{"too short", "v1:AAAA", "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := k.Decrypt(7, tt.in)
			require.ErrorIs(t, err, ErrDecrypt)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "ada@example.com")
		})
	}
}

// A payload made under one key id must not open under another id, even
// when both ids hold the same key: the id is authenticated.
func TestKeyIDIsAuthenticated(t *testing.T) {
	t.Parallel()
	k, err := NewKeyring("v1", map[string][]byte{"v1": testKey, "v2": testKey})
	require.NoError(t, err)
	sealed, err := k.Encrypt(7, "ada@example.com")
	require.NoError(t, err)
	_, err = k.Decrypt(7, "2:v2:"+strings.TrimPrefix(sealed, "2:v1:"))
	require.ErrorIs(t, err, ErrDecrypt)
}

func TestRotation(t *testing.T) {
	t.Parallel()
	old := newRing(t)
	oldSealed, err := old.Encrypt(7, "ada@example.com")
	require.NoError(t, err)

	rotated, err := NewKeyring("v2", map[string][]byte{"v1": testKey, "v2": otherKey()})
	require.NoError(t, err)
	assert.Equal(t, "v2", rotated.PrimaryKeyID())
	newSealed, err := rotated.Encrypt(7, "ada@example.com")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(newSealed, "2:v2:"))

	for _, s := range []string{oldSealed, newSealed} {
		got, err := rotated.Decrypt(7, s)
		require.NoError(t, err)
		assert.Equal(t, "ada@example.com", got)
	}
	_, err = old.Decrypt(7, newSealed)
	require.ErrorIs(t, err, ErrDecrypt)
	assert.Contains(t, err.Error(), `unknown key id "v2"`)
}

func TestNewKeyringErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		primary string
		keys    map[string][]byte
		want    string
	}{
		{"primary missing", "v2", map[string][]byte{"v1": testKey}, "not among the keys"},
		{"short key", "v1", map[string][]byte{"v1": testKey[:16]}, "16 bytes"},
		{"empty id", "", map[string][]byte{"": testKey}, "key id"},
		{"id with colon", "v:1", map[string][]byte{"v:1": testKey}, "key id"},
		{"long id", strings.Repeat("v", 17), map[string][]byte{strings.Repeat("v", 17): testKey}, "key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewKeyring(tt.primary, tt.keys)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), string(testKey))
		})
	}
}

func TestHash(t *testing.T) {
	t.Parallel()
	k := newRing(t)
	h1 := k.Hash("ada@example.com")
	assert.Len(t, h1, 32)
	assert.Equal(t, h1, k.Hash("ada@example.com"), "deterministic")
	assert.Equal(t, h1, newRing(t).Hash("ada@example.com"), "same key, same hash")
	assert.NotEqual(t, h1, k.Hash("Ada@example.com"), "different email")
	other, err := New(otherKey())
	require.NoError(t, err)
	assert.NotEqual(t, h1, other.Hash("ada@example.com"), "key-dependent")
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	k := newRing(t)
	deleted := time.UnixMilli(1700000000123).UTC()
	parent := int64(7)
	rec := viswals.Record{
		User: viswals.User{
			ID: 42, FirstName: "Zoë", LastName: "O'Brien, Jr.", Email: "zoe@example.com",
			CreatedAt: time.UnixMilli(1600000000456).UTC(), DeletedAt: &deleted, ParentUserID: &parent,
		},
		Version: viswals.Version{Load: 1732550000000000000, Line: 17},
	}
	s, err := k.Seal(rec)
	require.NoError(t, err)
	assert.Equal(t, rec.Version, s.Version)
	assert.Equal(t, k.Hash(rec.Email), s.EmailHash)
	assert.NotContains(t, s.EmailSealed, rec.Email)
	assert.Equal(t, rec.ID, s.ID)

	u, err := k.Open(s)
	require.NoError(t, err)
	assert.Equal(t, rec.User, u)

	s.EmailSealed = "v1:broken"
	_, err = k.Open(s)
	require.ErrorIs(t, err, ErrDecrypt)
	assert.Contains(t, err.Error(), "user 42")
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	k := newRing(t)
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 500 {
				email := strings.Repeat("x", g+i%7) + "@example.com"
				s, err := k.Encrypt(7, email)
				if err == nil {
					var got string
					got, err = k.Decrypt(7, s)
					if err == nil && got != email {
						err = errors.New("round trip mismatch")
					}
				}
				if err == nil && !bytes.Equal(k.Hash(email), k.Hash(email)) {
					err = errors.New("hash mismatch")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		require.NoError(t, <-errs)
	}
}

func FuzzDecrypt(f *testing.F) {
	k := newRing(f)
	good, err := k.Encrypt(7, "ada@example.com")
	require.NoError(f, err)
	for _, s := range []string{"", ":", "v1:", "v1:AAAA", good, good[:len(good)-1], "2:v2" + good[4:], "x:y:z", "2:v1:", "3:v1:AAAA", sealV1(f, k, "v1", "ada@example.com")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := k.Decrypt(7, s)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("error does not wrap ErrDecrypt: %v", err)
			}
			return
		}
		// Only a genuine ciphertext can open, and the only plaintext ever
		// sealed under this key is ours. (good itself differs per fuzz
		// worker process: its nonce is random.)
		if got != "ada@example.com" {
			t.Fatalf("Decrypt(%q) = %q, want an error", s, got)
		}
	})
}

var sink string

func BenchmarkEncrypt(b *testing.B) {
	k := newRing(b)
	b.ReportAllocs()
	for b.Loop() {
		s, err := k.Encrypt(7, "firstname.lastname@example.com")
		if err != nil {
			b.Fatal(err)
		}
		sink = s
	}
}

func BenchmarkDecrypt(b *testing.B) {
	k := newRing(b)
	sealed, err := k.Encrypt(7, "firstname.lastname@example.com")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		s, err := k.Decrypt(7, sealed)
		if err != nil {
			b.Fatal(err)
		}
		sink = s
	}
}

func BenchmarkHash(b *testing.B) {
	k := newRing(b)
	b.ReportAllocs()
	for b.Loop() {
		sink = string(k.Hash("firstname.lastname@example.com"))
	}
}

func BenchmarkSeal(b *testing.B) {
	k := newRing(b)
	rec := viswals.Record{
		User: viswals.User{
			ID: 42, FirstName: "Firstname", LastName: "Lastname", Email: "firstname.lastname@example.com",
			CreatedAt: time.UnixMilli(1600000000456),
		},
		Version: viswals.Version{Load: 1, Line: 2},
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := k.Seal(rec)
		if err != nil {
			b.Fatal(err)
		}
		sink = s.EmailSealed
	}
}

// The cursor key is the one cursors were signed with before the keyring
// derived it (HKDF-SHA256 of the key, label "viswals httpapi cursor v1"),
// so cursors handed out then still open; it differs per key and from
// every other subkey.
func TestCursorKey(t *testing.T) {
	t.Parallel()
	k := newRing(t)
	want, err := hkdf.Key(sha256.New, testKey, nil, "viswals httpapi cursor v1", 32)
	require.NoError(t, err)
	assert.Equal(t, want, k.CursorKey())

	hashKey, err := subkey(testKey, hashInfo)
	require.NoError(t, err)
	assert.NotEqual(t, hashKey, k.CursorKey())
	assert.NotEqual(t, testKey, k.CursorKey())

	other, err := New(otherKey())
	require.NoError(t, err)
	assert.NotEqual(t, k.CursorKey(), other.CursorKey())
	rotated, err := NewKeyring("v2", map[string][]byte{"v1": otherKey(), "v2": testKey})
	require.NoError(t, err)
	assert.Equal(t, k.CursorKey(), rotated.CursorKey(), "derived from the primary key")
}

// The session key is its own subkey: it differs from the cursor and hash
// keys, per key, and follows the primary key.
func TestSessionKey(t *testing.T) {
	t.Parallel()
	k := newRing(t)
	want, err := hkdf.Key(sha256.New, testKey, nil, "viswals session v1", 32)
	require.NoError(t, err)
	assert.Equal(t, want, k.SessionKey())
	assert.Equal(t, k.SessionKey(), newRing(t).SessionKey(), "every process with the key derives the same")

	hashKey, err := subkey(testKey, hashInfo)
	require.NoError(t, err)
	assert.NotEqual(t, hashKey, k.SessionKey())
	assert.NotEqual(t, k.CursorKey(), k.SessionKey())
	assert.NotEqual(t, testKey, k.SessionKey())

	other, err := New(otherKey())
	require.NoError(t, err)
	assert.NotEqual(t, k.SessionKey(), other.SessionKey())
	rotated, err := NewKeyring("v2", map[string][]byte{"v1": otherKey(), "v2": testKey})
	require.NoError(t, err)
	assert.Equal(t, k.SessionKey(), rotated.SessionKey(), "derived from the primary key")
}

// sealV1 seals as earlier releases did: "<id>:<payload>", only the key id
// as additional data.
func sealV1(t testing.TB, k *Keyring, id, plaintext string) string {
	t.Helper()
	dk, ok := k.keys[id]
	require.True(t, ok)
	return id + ":" + b64.EncodeToString(dk.aead.Seal(nil, nil, []byte(plaintext), []byte(id)))
}

// New seals bind the user id: the ciphertext of one user copied into
// another user's row does not open there; seals of earlier releases,
// without the user id, still open for any user.
func TestUserIDIsBound(t *testing.T) {
	t.Parallel()
	k := newRing(t)
	sealed, err := k.Encrypt(1, "ann@example.com")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(sealed, "2:v1:"), sealed)
	got, err := k.Decrypt(1, sealed)
	require.NoError(t, err)
	assert.Equal(t, "ann@example.com", got)
	_, err = k.Decrypt(2, sealed)
	require.ErrorIs(t, err, ErrDecrypt)
	assert.Contains(t, err.Error(), "another user")

	failures := 0
	k.OnOpenFailure(func() { failures++ })
	_, err = k.Open(viswals.SealedUser{ID: 2, EmailSealed: sealed})
	require.ErrorIs(t, err, ErrDecrypt)
	assert.Equal(t, viswals.EINTEGRITY, viswals.ErrorCode(err))
	assert.Contains(t, viswals.ErrorMessage(err), "user 2")
	assert.NotContains(t, err.Error(), "ann@example.com")
	assert.Equal(t, 1, failures)

	old := sealV1(t, k, "v1", "bob@example.com")
	for _, id := range []int64{1, 99} {
		got, err := k.Decrypt(id, old)
		require.NoError(t, err)
		assert.Equal(t, "bob@example.com", got)
	}
	// Relabelling a version 1 seal as version 2, or back, fails.
	_, err = k.Decrypt(1, "2:"+old)
	require.ErrorIs(t, err, ErrDecrypt)
	_, err = k.Decrypt(1, strings.TrimPrefix(sealed, "2:"))
	require.ErrorIs(t, err, ErrDecrypt)
}

func TestCurrentAndSealingOf(t *testing.T) {
	t.Parallel()
	old := newRing(t)
	rotated, err := NewKeyring("k2", map[string][]byte{"v1": testKey, "k2": otherKey()})
	require.NoError(t, err)
	assert.Equal(t, []string{"k2", "v1"}, rotated.KeyIDs())
	underOld, err := old.Encrypt(5, "a@example.com")
	require.NoError(t, err)
	underNew, err := rotated.Encrypt(5, "a@example.com")
	require.NoError(t, err)
	legacy := sealV1(t, rotated, "k2", "a@example.com")
	tests := []struct {
		sealed  string
		current bool
		sealing string
	}{
		{underOld, false, "v1"},
		{underNew, true, "k2"},
		{legacy, false, "k2 (unbound)"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.current, rotated.Current(tt.sealed), tt.sealing)
		s, ok := SealingOf(tt.sealed)
		assert.True(t, ok)
		assert.Equal(t, tt.sealing, s.String())
	}
	_, ok := SealingOf("plain@example.com")
	assert.False(t, ok)
	assert.False(t, rotated.Current("garbage"))
}
