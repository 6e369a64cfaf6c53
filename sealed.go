package viswals

import "time"

// SealedUser is a user as the stores keep it: the email sealed (encrypted,
// prefixed with the key id) and a keyed hash of it, so that a store can tell
// whether an email changed without ever seeing it. Version orders writes.
type SealedUser struct {
	ID           int64
	FirstName    string
	LastName     string
	EmailSealed  string // "<keyid>:<base64 nonce|ciphertext|tag>", never plaintext
	EmailHash    []byte // HMAC-SHA256 of the plaintext email under a key derived from the encryption key
	CreatedAt    time.Time
	DeletedAt    *time.Time
	MergedAt     *time.Time
	ParentUserID *int64
	Version      Version
}
