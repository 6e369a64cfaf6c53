// Package emailcrypt encrypts email addresses with AES-256-GCM before they
// reach any store, and keys a hash of them so stores can compare emails
// without seeing them.
//
// A sealed email is "<keyid>:" followed by the unpadded standard base64 of
// nonce (12 random bytes) || ciphertext || tag. The key id selects the key
// on decryption, so keys can be rotated: add the new key, make it primary,
// and old ciphertexts still open until they are rewritten.
package emailcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"

	"github.com/viswals/viswals"
)

// DefaultKeyID is the id New gives its single key.
const DefaultKeyID = "v1"

// The subkeys derived from the primary key, one per purpose, so that the
// same secret never serves two purposes and no second secret needs
// configuring. The cursor key's label predates this package deriving it;
// it is kept so that cursors handed out earlier stay valid.
const (
	hashInfo    = "viswals email hash v1"
	cursorInfo  = "viswals httpapi cursor v1"
	sessionInfo = "viswals session v1"
)

// maxKeyIDLen bounds key ids; they are repeated in every sealed email.
const maxKeyIDLen = 16

// b64 is the payload encoding. Strict decoding refuses non-zero padding
// bits, so every payload has exactly one spelling and changing any
// character of it is detected.
var b64 = base64.RawStdEncoding.Strict()

// ErrDecrypt is wrapped by every Decrypt failure: a malformed sealed
// string, an unknown key id, or a ciphertext that fails authentication.
var ErrDecrypt = errors.New("emailcrypt: cannot decrypt email")

// Keyring encrypts with its primary key and decrypts with any of its keys.
// It is safe for concurrent use.
type Keyring struct {
	primary    string
	keys       map[string]key
	hashes     sync.Pool // of hash.Hash keyed with the hash subkey
	cursorKey  []byte
	sessionKey []byte
}

// key is one key of the ring, prepared once: AES key expansion is costly,
// and the id as bytes is the additional data of every seal.
type key struct {
	aead cipher.AEAD
	aad  []byte
}

// New returns a Keyring with one key, id DefaultKeyID.
func New(key []byte) (*Keyring, error) {
	return NewKeyring(DefaultKeyID, map[string][]byte{DefaultKeyID: key})
}

// NewKeyring returns a Keyring holding keys by id, encrypting with
// keys[primaryID]. Ids are short ASCII letters and digits (they prefix
// every ciphertext); keys are KeySize bytes.
func NewKeyring(primaryID string, keys map[string][]byte) (*Keyring, error) {
	if _, ok := keys[primaryID]; !ok {
		return nil, fmt.Errorf("emailcrypt: primary key id %q is not among the keys", primaryID)
	}
	k := &Keyring{primary: primaryID, keys: make(map[string]key, len(keys))}
	for id, secret := range keys {
		if !validKeyID(id) {
			return nil, fmt.Errorf("emailcrypt: key id %q must be 1 to %d ASCII letters or digits", id, maxKeyIDLen)
		}
		if len(secret) != KeySize {
			return nil, fmt.Errorf("emailcrypt: key %q is %d bytes, want %d", id, len(secret), KeySize)
		}
		block, err := aes.NewCipher(secret)
		if err != nil {
			return nil, fmt.Errorf("emailcrypt: key %q: %w", id, err)
		}
		// The AEAD draws the nonce from crypto/rand and prepends it, which
		// is exactly the payload layout we want.
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("emailcrypt: key %q: %w", id, err)
		}
		k.keys[id] = key{aead: aead, aad: []byte(id)}
	}
	hashKey, err := subkey(keys[primaryID], hashInfo)
	if err != nil {
		return nil, fmt.Errorf("emailcrypt: derive hash key: %w", err)
	}
	k.hashes.New = func() any { return hmac.New(sha256.New, hashKey) }
	if k.cursorKey, err = subkey(keys[primaryID], cursorInfo); err != nil {
		return nil, fmt.Errorf("emailcrypt: derive cursor key: %w", err)
	}
	if k.sessionKey, err = subkey(keys[primaryID], sessionInfo); err != nil {
		return nil, fmt.Errorf("emailcrypt: derive session key: %w", err)
	}
	return k, nil
}

// subkey derives the key for one purpose from secret.
func subkey(secret []byte, info string) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, info, sha256.Size)
}

// CursorKey returns the key that signs the cursors and stream resume ids
// handed to API clients. It is derived from the primary key, so every
// process with the same keys signs alike, and a cursor reveals nothing
// about the key.
func (k *Keyring) CursorKey() []byte { return k.cursorKey }

// SessionKey returns the key that signs the web page's session cookies.
// Like CursorKey it is derived from the primary key: every process with
// the same keys accepts the others' sessions, and rotating the primary key
// ends every session.
func (k *Keyring) SessionKey() []byte { return k.sessionKey }

func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLen {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// PrimaryKeyID returns the id of the key Encrypt uses.
func (k *Keyring) PrimaryKeyID() string { return k.primary }

// Encrypt seals plaintext with the primary key. The key id is the
// additional authenticated data, so a payload moved under another id
// fails to open.
func (k *Keyring) Encrypt(plaintext string) (string, error) {
	pk := k.keys[k.primary]
	rawLen := len(plaintext) + pk.aead.Overhead()
	prefixLen := len(k.primary) + 1
	encLen := b64.EncodedLen(rawLen)

	// One scratch buffer, no other allocation: "<id>:" and the encoded
	// payload at the front, the raw payload at the back. The plaintext is
	// staged in the front (encLen > len(plaintext)), sealed into the back,
	// and the front is then overwritten by the encoding.
	buf := make([]byte, prefixLen+encLen+rawLen)
	copy(buf, k.primary)
	buf[len(k.primary)] = ':'
	front, back := buf[prefixLen:prefixLen+encLen], buf[prefixLen+encLen:]
	n := copy(front, plaintext)
	raw := pk.aead.Seal(back[:0], nil, front[:n], pk.aad)
	b64.Encode(front, raw)
	return string(buf[:prefixLen+encLen]), nil
}

// Decrypt opens a string made by Encrypt with any key of the ring. Every
// error wraps ErrDecrypt and names only the key id.
func (k *Keyring) Decrypt(sealed string) (string, error) {
	id, payload, ok := strings.Cut(sealed, ":")
	if !ok {
		return "", fmt.Errorf("%w: no key id prefix", ErrDecrypt)
	}
	dk, ok := k.keys[id]
	if !ok {
		if !validKeyID(id) {
			// Do not echo a prefix that may be anything, even plaintext.
			return "", fmt.Errorf("%w: malformed key id", ErrDecrypt)
		}
		return "", fmt.Errorf("%w: unknown key id %q", ErrDecrypt, id)
	}
	raw, err := b64.DecodeString(payload)
	if err != nil {
		return "", fmt.Errorf("%w: key id %q: payload is not base64", ErrDecrypt, id)
	}
	if len(raw) < dk.aead.Overhead() {
		return "", fmt.Errorf("%w: key id %q: payload too short", ErrDecrypt, id)
	}
	// Open in place: the plaintext is shorter than the payload.
	plain, err := dk.aead.Open(raw[:0], nil, raw, dk.aad)
	if err != nil {
		return "", fmt.Errorf("%w: key id %q: authentication failed (wrong key or tampered)", ErrDecrypt, id)
	}
	return string(plain), nil
}

// Hash returns HMAC-SHA256 of plaintext under a subkey derived from the
// primary key: equal emails give equal hashes, so a store can tell whether
// an email changed without seeing it. Rotating the primary key changes
// every hash, which at worst makes a store rewrite an unchanged email.
func (k *Keyring) Hash(plaintext string) []byte {
	h := k.hashes.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(plaintext))
	sum := h.Sum(make([]byte, 0, sha256.Size))
	k.hashes.Put(h)
	return sum
}

// Seal returns r as the stores keep it: the email encrypted and hashed.
func (k *Keyring) Seal(r viswals.Record) (viswals.SealedUser, error) {
	sealed, err := k.Encrypt(r.Email)
	if err != nil {
		return viswals.SealedUser{}, fmt.Errorf("seal user %d: %w", r.ID, err)
	}
	return viswals.SealedUser{
		ID:           r.ID,
		FirstName:    r.FirstName,
		LastName:     r.LastName,
		EmailSealed:  sealed,
		EmailHash:    k.Hash(r.Email),
		CreatedAt:    r.CreatedAt,
		DeletedAt:    r.DeletedAt,
		MergedAt:     r.MergedAt,
		ParentUserID: r.ParentUserID,
		Version:      r.Version,
	}, nil
}

// Open returns the user of s with its email decrypted.
func (k *Keyring) Open(s viswals.SealedUser) (viswals.User, error) {
	email, err := k.Decrypt(s.EmailSealed)
	if err != nil {
		return viswals.User{}, fmt.Errorf("open user %d: %w", s.ID, err)
	}
	return viswals.User{
		ID:           s.ID,
		FirstName:    s.FirstName,
		LastName:     s.LastName,
		Email:        email,
		CreatedAt:    s.CreatedAt,
		DeletedAt:    s.DeletedAt,
		MergedAt:     s.MergedAt,
		ParentUserID: s.ParentUserID,
	}, nil
}
