package emailcrypt

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/viswals/viswals"
)

// KeySize is the length of an AES-256 key in bytes.
const KeySize = 32

// howToMakeKey ends every key error: the fix is always the same command.
const howToMakeKey = "generate one with: openssl rand -base64 32"

// ParseKey decodes the ENCRYPTION_KEY setting: 32 random bytes written as
// base64 (standard or URL alphabet, with or without padding) or as 64 hex
// digits (either case). Surrounding whitespace is ignored because keys are
// pasted into .env files and shells.
//
// A key that decodes but is plainly not random is refused as weak (see
// weakness). Errors say what is wrong and how to make a key; they never
// contain the key itself.
func ParseKey(s string) ([]byte, error) {
	return parseKey("ENCRYPTION_KEY", s)
}

// parseKey is ParseKey for the setting called name in errors.
func parseKey(name, s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, keyError("%s is not set", name)
	}
	key, encoding, err := decodeKey(name, s)
	if err != nil {
		return nil, err
	}
	if len(key) != KeySize {
		return nil, keyError("%s decodes (as %s) to %d bytes, it must be exactly %d", name, encoding, len(key), KeySize)
	}
	if why := weakness(key); why != "" {
		return nil, keyError("%s is weak: %s", name, why)
	}
	return key, nil
}

// ParseKeyring builds the Keyring of the settings: ENCRYPTION_KEYS, a
// comma-separated list of id:key entries whose first is the primary (it
// seals; the others only open), or ENCRYPTION_KEY, one key, which gets
// the id DefaultKeyID (the id earlier releases sealed with, so their
// emails keep opening). Exactly one of the two must be set. Errors name
// the setting, the entry's position and its id, never key material.
func ParseKeyring(key, keys string) (*Keyring, error) {
	key, keys = strings.TrimSpace(key), strings.TrimSpace(keys)
	switch {
	case key != "" && keys != "":
		return nil, viswals.Errorf(viswals.EINVALID, "both ENCRYPTION_KEY and ENCRYPTION_KEYS are set; set one (ENCRYPTION_KEY=K is ENCRYPTION_KEYS=%s:K)", DefaultKeyID)
	case key == "" && keys == "":
		return nil, keyError("neither ENCRYPTION_KEY nor ENCRYPTION_KEYS is set")
	case keys == "":
		k, err := ParseKey(key)
		if err != nil {
			return nil, err
		}
		return New(k)
	}
	ring := map[string][]byte{}
	at := map[string]int{} // entry number of each id
	primary := ""
	for i, entry := range strings.Split(keys, ",") {
		n := i + 1
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, keyError("ENCRYPTION_KEYS entry %d is empty; write id:key,id:key with the primary first", n)
		}
		id, secret, ok := strings.Cut(entry, ":")
		id = strings.TrimSpace(id)
		switch {
		case !ok:
			return nil, keyError("ENCRYPTION_KEYS entry %d has no id; write id:key, e.g. k2:KEY", n)
		case !validKeyID(id):
			// Not echoed: a key pasted in the wrong place could be the "id".
			return nil, viswals.Errorf(viswals.EINVALID, "ENCRYPTION_KEYS entry %d: the key id must be 1 to %d ASCII letters or digits", n, maxKeyIDLen)
		case at[id] != 0:
			return nil, viswals.Errorf(viswals.EINVALID, "ENCRYPTION_KEYS: key id %q appears twice (entries %d and %d); each id names one key", id, at[id], n)
		}
		k, err := parseKey(fmt.Sprintf("ENCRYPTION_KEYS entry %d (id %q)", n, id), secret)
		if err != nil {
			return nil, err
		}
		ring[id], at[id] = k, n
		if primary == "" {
			primary = id
		}
	}
	return NewKeyring(primary, ring)
}

// decodeKey returns the decoded bytes and the name of the encoding found.
// A string of only hex digits is read as hex: such strings are also valid
// base64, but a random base64 key is all hex digits with probability
// (22/64)^43 ≈ 1e-20, while a hex key always is.
func decodeKey(name, s string) ([]byte, string, error) {
	if isHex(s) {
		if len(s)%2 == 0 {
			key, _ := hex.DecodeString(s) // cannot fail: even length, hex digits only
			return key, "hex", nil
		}
		// Odd length: an unpadded base64 key can be all hex letters
		// (think "AAAA…"); otherwise it is a hex key missing a digit.
		if key, err := base64.RawStdEncoding.DecodeString(s); err == nil && len(key) == KeySize {
			return key, "base64", nil
		}
		return nil, "", keyError("%s has an odd number of hex digits (%d), a key is %d", name, len(s), 2*KeySize)
	}
	if len(s) == 2*KeySize {
		return nil, "", keyError("%s is %d characters like a hex key, but not all are hex digits", name, len(s))
	}
	// Padding tells the padded and raw encodings apart, the alphabet tells
	// standard from URL: at most one of these can succeed on a key.
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.URLEncoding,
		base64.RawStdEncoding, base64.RawURLEncoding,
	} {
		if key, err := enc.DecodeString(s); err == nil {
			return key, "base64", nil
		}
	}
	return nil, "", keyError("%s is neither base64 nor 64 hex digits", name)
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// weakness returns why key is not random, or "" if it looks random.
// Each test is one a key from `openssl rand -base64 32` fails with a
// probability below 1e-13:
//   - fewer than 16 distinct byte values (all zeros, "abab...", a short
//     secret repeated): 32 random bytes have about 30; P(<16) ≈ 3e-17;
//   - a counting sequence such as 00 01 02 ... 1f, a classic test key;
//   - only printable ASCII: a password typed in and base64-encoded rather
//     than random bytes; P ≈ (95/256)^32 ≈ 2e-14.
func weakness(key []byte) string {
	var seen [256]bool
	distinct := 0
	printable := true
	counting := true
	for i, b := range key {
		if !seen[b] {
			seen[b] = true
			distinct++
		}
		if b < 0x20 || b > 0x7e {
			printable = false
		}
		if i >= 2 && b-key[i-1] != key[1]-key[0] {
			counting = false
		}
	}
	switch {
	case distinct < 16:
		return fmt.Sprintf("it has only %d distinct byte values, random bytes have about 30", distinct)
	case counting:
		return "its bytes form a counting sequence, not random bytes"
	case printable:
		return "it is all printable text (a password?), not random bytes"
	}
	return ""
}

func keyError(format string, args ...any) error {
	return viswals.Errorf(viswals.EINVALID, format+"; "+howToMakeKey, args...)
}
