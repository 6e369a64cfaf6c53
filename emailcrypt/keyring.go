// Package emailcrypt encrypts email addresses with AES-256-GCM before they
// reach any store, and keys a hash of them so stores can compare emails
// without seeing them.
//
// A sealed email is "2:<keyid>:" followed by the unpadded standard base64
// of nonce (12 random bytes) || ciphertext || tag, sealed with the
// additional data "2:<keyid>:" and the user's id, so that a ciphertext
// copied to another user's row does not open. The key id selects the key
// on decryption, so keys can be rotated: add the new key, make it primary,
// and old ciphertexts still open until they are rewritten (consumer rekey).
//
// Version 1, "<keyid>:<payload>" with only the key id as additional data,
// is what earlier releases wrote; it still opens, and rekey rewrites it.
// The payload never holds a colon, so the colons tell the versions apart.
package emailcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
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

	onOpenFailure func() // see OnOpenFailure
}

// key is one key of the ring, prepared once: AES key expansion is costly.
// prefix is the start of every version 2 seal under the key, and of its
// additional data.
type key struct {
	aead   cipher.AEAD
	prefix string // "2:<id>:"
	v1AAD  []byte // version 1: the id alone
}

// version2 starts every seal bound to a user id.
const version2 = "2"

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
		k.keys[id] = key{aead: aead, prefix: version2 + ":" + id + ":", v1AAD: []byte(id)}
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

// KeyIDs returns the ids of the ring's keys, the primary first.
func (k *Keyring) KeyIDs() []string {
	ids := []string{k.primary}
	for id := range k.keys {
		if id != k.primary {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids[1:])
	return ids
}

// aad returns the additional data of a version 2 seal: its prefix and the
// user id, big-endian.
func (pk *key) aad(dst []byte, userID int64) []byte {
	dst = append(dst, pk.prefix...)
	return binary.BigEndian.AppendUint64(dst, uint64(userID))
}

// Encrypt seals the email of user userID with the primary key. The key id
// and the user id are the additional authenticated data, so a payload
// moved under another key id or to another user fails to open.
func (k *Keyring) Encrypt(userID int64, plaintext string) (string, error) {
	pk := k.keys[k.primary]
	rawLen := len(plaintext) + pk.aead.Overhead()
	prefixLen := len(pk.prefix)
	encLen := b64.EncodedLen(rawLen)

	// One scratch buffer, no other allocation: the prefix and the encoded
	// payload at the front, the raw payload at the back. The plaintext is
	// staged in the front (encLen > len(plaintext)), sealed into the back,
	// and the front is then overwritten by the encoding.
	buf := make([]byte, prefixLen+encLen+rawLen)
	copy(buf, pk.prefix)
	front, back := buf[prefixLen:prefixLen+encLen], buf[prefixLen+encLen:]
	n := copy(front, plaintext)
	var aadBuf [maxKeyIDLen + 3 + 8]byte
	raw := pk.aead.Seal(back[:0], nil, front[:n], pk.aad(aadBuf[:0], userID))
	b64.Encode(front, raw)
	return string(buf[:prefixLen+encLen]), nil
}

// Sealing tells how a sealed email was sealed: the id of its key, and
// whether it binds the user id (version 2).
type Sealing struct {
	KeyID string
	Bound bool
}

// String is "<keyid>" for a bound seal, "<keyid> (unbound)" otherwise.
func (s Sealing) String() string {
	if s.Bound {
		return s.KeyID
	}
	return s.KeyID + " (unbound)"
}

// SealingOf returns how sealed was sealed, without opening it; ok is
// false when it is not a sealed email.
func SealingOf(sealed string) (s Sealing, ok bool) {
	bound, id, _, err := split(sealed)
	return Sealing{KeyID: id, Bound: bound}, err == nil
}

// Current reports whether sealed is as Encrypt seals now: under the
// primary key and bound to the user id. Rekeying rewrites the others.
func (k *Keyring) Current(sealed string) bool {
	bound, id, _, err := split(sealed)
	return err == nil && bound && id == k.primary
}

// split cuts a sealed email into its parts. Errors never echo it: a
// malformed value may be anything, even plaintext.
func split(sealed string) (bound bool, id, payload string, err error) {
	first, rest, ok := strings.Cut(sealed, ":")
	if !ok {
		return false, "", "", fmt.Errorf("%w: no key id prefix", ErrDecrypt)
	}
	id, payload, bound = strings.Cut(rest, ":")
	if !bound {
		id, payload = first, rest
	} else if first != version2 {
		return false, "", "", fmt.Errorf("%w: unknown format", ErrDecrypt)
	}
	if !validKeyID(id) {
		return false, "", "", fmt.Errorf("%w: malformed key id", ErrDecrypt)
	}
	return bound, id, payload, nil
}

// Decrypt opens a string made by Encrypt for user userID (or by an
// earlier release, without the user id) with any key of the ring. Every
// error wraps ErrDecrypt and names only the key id.
func (k *Keyring) Decrypt(userID int64, sealed string) (string, error) {
	bound, id, payload, err := split(sealed)
	if err != nil {
		return "", err
	}
	dk, ok := k.keys[id]
	if !ok {
		return "", fmt.Errorf("%w: unknown key id %q", ErrDecrypt, id)
	}
	raw, err := b64.DecodeString(payload)
	if err != nil {
		return "", fmt.Errorf("%w: key id %q: payload is not base64", ErrDecrypt, id)
	}
	if len(raw) < dk.aead.Overhead() {
		return "", fmt.Errorf("%w: key id %q: payload too short", ErrDecrypt, id)
	}
	aad := dk.v1AAD
	if bound {
		var aadBuf [maxKeyIDLen + 3 + 8]byte
		aad = dk.aad(aadBuf[:0], userID)
	}
	// Open in place: the plaintext is shorter than the payload.
	plain, err := dk.aead.Open(raw[:0], nil, raw, aad)
	if err != nil {
		if bound {
			return "", fmt.Errorf("%w: key id %q: authentication failed (wrong key, tampered, or moved from another user's row)", ErrDecrypt, id)
		}
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
	sealed, err := k.Encrypt(r.ID, r.Email)
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

// OnOpenFailure sets a function Open calls each time an email does not
// open, for a metric. Call it before the Keyring is used.
func (k *Keyring) OnOpenFailure(fn func()) { k.onOpenFailure = fn }

// Open returns the user of s with its email decrypted. An email that does
// not open is never replaced: the error (EINTEGRITY, naming the user id)
// wraps ErrDecrypt.
func (k *Keyring) Open(s viswals.SealedUser) (viswals.User, error) {
	email, err := k.Decrypt(s.ID, s.EmailSealed)
	if err != nil {
		if k.onOpenFailure != nil {
			k.onOpenFailure()
		}
		return viswals.User{}, fmt.Errorf("%w: %w", viswals.Errorf(viswals.EINTEGRITY,
			"the stored email of user %d failed its integrity check and is not served", s.ID), err)
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
