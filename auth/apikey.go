package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/viswals/viswals"
)

// KeyPrefix starts every API key, so that a key is told from a JWT without
// parsing and is recognisable when found where it should not be.
const KeyPrefix = "vsk_"

// keyRandomBytes is the key's entropy.
const keyRandomBytes = 32

// keyLen is the length of every key: the prefix and 32 bytes in unpadded
// base64url.
var keyLen = len(KeyPrefix) + base64.RawURLEncoding.EncodedLen(keyRandomBytes)

// keyEncoding decodes a key's body; strict, so each key has one spelling.
var keyEncoding = base64.RawURLEncoding.Strict()

// maxKeyFileBytes bounds the keys file; it holds a few lines per caller.
const maxKeyFileBytes = 1 << 20

// maxNameLen bounds a key's name.
const maxNameLen = 64

// DefaultCheckEvery is how often a KeyFile looks for changes by default.
const DefaultCheckEvery = time.Second

// fullReadEvery is how often a KeyFile reads the whole file even if its
// size and modification time are unchanged: a file rewritten within the
// same timestamp tick with the same size is still picked up.
const fullReadEvery = 30 * time.Second

// KeyEntry is one line of the keys file.
type KeyEntry struct {
	Name string
	Role Role
	Hash [sha256.Size]byte // SHA-256 of the key
}

// String returns the entry as a line of the keys file, without newline.
func (e KeyEntry) String() string {
	return e.Name + " " + e.Role.String() + " " + hex.EncodeToString(e.Hash[:])
}

// GenerateKey returns a new random API key for name and role, and the line
// of the keys file that grants it.
func GenerateKey(name string, role Role) (key, line string, err error) {
	if err := validName(name); err != nil {
		return "", "", err
	}
	if !role.Valid() {
		return "", "", viswals.Errorf(viswals.EINVALID, "role must be reader, pii or admin")
	}
	b := make([]byte, keyRandomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate API key: %w", err)
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return key, KeyEntry{Name: name, Role: role, Hash: sha256.Sum256([]byte(key))}.String(), nil
}

func validName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return viswals.Errorf(viswals.EINVALID, "name must be 1 to %d characters", maxNameLen)
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return viswals.Errorf(viswals.EINVALID, "name must hold only ASCII letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// ParseKeys reads a keys file. It returns every valid entry, and an error
// that names each malformed line by number (never by content: a key
// pasted there by mistake must not reach a log).
func ParseKeys(r io.Reader) ([]KeyEntry, error) {
	var (
		entries []KeyEntry
		errs    []error
		names   = map[string]int{}
		hashes  = map[[sha256.Size]byte]int{}
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		e, err := parseKeyLine(sc.Text())
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		case e == nil:
			continue
		}
		if first, dup := names[e.Name]; dup {
			errs = append(errs, fmt.Errorf("line %d: name %q is already used on line %d", n, e.Name, first))
			continue
		}
		if first, dup := hashes[e.Hash]; dup {
			errs = append(errs, fmt.Errorf("line %d: the same key hash is already on line %d", n, first))
			continue
		}
		names[e.Name], hashes[e.Hash] = n, n
		entries = append(entries, *e)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("line %d: %w", n+1, err))
	}
	return entries, errors.Join(errs...)
}

// parseKeyLine returns the entry of one line, or nil for a blank line or
// a comment.
func parseKeyLine(line string) (*KeyEntry, error) {
	fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' })
	if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
		return nil, nil
	}
	for _, f := range fields {
		if strings.HasPrefix(f, KeyPrefix) {
			return nil, errors.New("holds an API key itself: the file takes only its SHA-256 (the second line printed by `consumer apikey create`); treat that key as leaked and make a new one")
		}
	}
	if len(fields) != 3 {
		return nil, fmt.Errorf("want NAME ROLE SHA256-HEX, got %d fields", len(fields))
	}
	e := &KeyEntry{Name: fields[0]}
	if err := validName(fields[0]); err != nil {
		return nil, err
	}
	role, err := ParseRole(fields[1])
	if err != nil {
		return nil, errors.New("role must be reader, pii or admin")
	}
	e.Role = role
	if len(fields[2]) != hex.EncodedLen(sha256.Size) {
		return nil, fmt.Errorf("the hash must be %d hex digits", hex.EncodedLen(sha256.Size))
	}
	if _, err := hex.Decode(e.Hash[:], []byte(fields[2])); err != nil {
		return nil, fmt.Errorf("the hash must be %d hex digits", hex.EncodedLen(sha256.Size))
	}
	return e, nil
}

// KeyFileOptions tunes a KeyFile. The zero value is ready to use.
type KeyFileOptions struct {
	// CheckEvery is the longest a change to the file goes unnoticed
	// (default DefaultCheckEvery). Negative: check on every lookup.
	CheckEvery time.Duration
	// Logger receives reload errors (default: discarded).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// KeyFile authenticates API keys against a keys file that it re-reads when
// the file changes. It is safe for concurrent use.
type KeyFile struct {
	path   string
	opts   KeyFileOptions
	keys   atomic.Pointer[[]KeyEntry]
	next   atomic.Int64 // unix nanoseconds of the next check
	reload sync.Mutex   // one reload at a time; lookups never wait for it

	// Guarded by reload.
	size     int64
	modTime  time.Time
	sum      [sha256.Size]byte
	lastRead time.Time
	parseErr error // of the content last read
	lastErr  string
}

// OpenKeyFile reads the keys file at path. Any malformed line is an error
// here, so that a mistake is seen at start; later, a malformed line only
// refuses its own key.
func OpenKeyFile(path string, opts KeyFileOptions) (*KeyFile, error) {
	if opts.CheckEvery == 0 {
		opts.CheckEvery = DefaultCheckEvery
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &KeyFile{path: path, opts: opts}
	f.keys.Store(&[]KeyEntry{})
	if err := f.load(true); err != nil {
		return nil, err
	}
	f.next.Store(opts.Now().Add(opts.CheckEvery).UnixNano())
	return f, nil
}

// Lookup returns the principal whose key is key. A key that is malformed,
// unknown or revoked gives an EUNAUTHENTICATED error that does not repeat
// the key.
func (f *KeyFile) Lookup(key string) (Principal, error) {
	if !wellFormedKey(key) {
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "malformed API key")
	}
	f.maybeReload()
	sum := sha256.Sum256([]byte(key))
	// Every entry is compared in constant time and the loop does not stop
	// at a match: the time taken says nothing about the hashes held.
	match := -1
	keys := *f.keys.Load()
	for i := range keys {
		if subtle.ConstantTimeCompare(keys[i].Hash[:], sum[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "unknown or revoked API key")
	}
	return Principal{Name: keys[match].Name, Role: keys[match].Role, Kind: KindAPIKey}, nil
}

// Role returns the role of the key named name, and whether the file still
// holds it.
func (f *KeyFile) Role(name string) (Role, bool) {
	f.maybeReload()
	for _, e := range *f.keys.Load() {
		if e.Name == name {
			return e.Role, true
		}
	}
	return RoleNone, false
}

// wellFormedKey reports whether key has the exact shape GenerateKey gives:
// no surrounding space, no other case of the prefix, no padding.
func wellFormedKey(key string) bool {
	if len(key) != keyLen || !strings.HasPrefix(key, KeyPrefix) {
		return false
	}
	var b [keyRandomBytes]byte
	n, err := keyEncoding.Decode(b[:], []byte(key[len(KeyPrefix):]))
	return err == nil && n == keyRandomBytes
}

// maybeReload checks the file for changes once CheckEvery has passed since
// the last check. One caller does it; the others go on with the keys they
// have.
func (f *KeyFile) maybeReload() {
	now := f.opts.Now()
	if f.opts.CheckEvery > 0 && now.UnixNano() < f.next.Load() {
		return
	}
	if !f.reload.TryLock() {
		return
	}
	defer f.reload.Unlock()
	if f.opts.CheckEvery > 0 {
		if now.UnixNano() < f.next.Load() {
			return // another caller has just checked
		}
		f.next.Store(now.Add(f.opts.CheckEvery).UnixNano())
	}
	if err := f.loadLocked(false); err != nil {
		if msg := err.Error(); msg != f.lastErr {
			f.lastErr = msg
			f.opts.Logger.Error("API keys file: keys on broken lines are refused until fixed", "path", f.path, "err", err)
		}
		return
	}
	if f.lastErr != "" {
		f.lastErr = ""
		f.opts.Logger.Info("API keys file is valid again", "path", f.path)
	}
}

func (f *KeyFile) load(strict bool) error {
	f.reload.Lock()
	defer f.reload.Unlock()
	return f.loadLocked(strict)
}

// loadLocked reads the file if its size or modification time changed, or
// if it was last read fullReadEvery ago, and takes its entries if its
// content changed. An unreadable file refuses every key; a malformed line
// refuses its own key (strict: the whole file is refused).
func (f *KeyFile) loadLocked(strict bool) error {
	now := f.opts.Now()
	st, err := os.Stat(f.path)
	if err != nil {
		f.forget()
		return fmt.Errorf("API keys file: %w", err)
	}
	if !strict && st.Size() == f.size && st.ModTime().Equal(f.modTime) && now.Sub(f.lastRead) < fullReadEvery {
		return f.parseErr
	}
	if st.Size() > maxKeyFileBytes {
		f.forget()
		return fmt.Errorf("API keys file %s is larger than %d bytes", f.path, maxKeyFileBytes)
	}
	data, err := readBounded(f.path, maxKeyFileBytes)
	if err != nil {
		f.forget()
		return fmt.Errorf("API keys file: %w", err)
	}
	f.size, f.modTime, f.lastRead = st.Size(), st.ModTime(), now
	sum := sha256.Sum256(data)
	if sum == f.sum && !strict {
		return f.parseErr
	}
	entries, perr := ParseKeys(bytes.NewReader(data))
	if perr != nil {
		perr = fmt.Errorf("API keys file %s: %w", f.path, perr)
		if strict {
			return perr
		}
	}
	f.sum, f.parseErr = sum, perr
	f.keys.Store(&entries)
	return perr
}

// forget drops the keys and what is known of the file, so that the next
// check reads it afresh.
func (f *KeyFile) forget() {
	f.keys.Store(&[]KeyEntry{})
	f.size, f.modTime, f.sum, f.parseErr = -1, time.Time{}, [sha256.Size]byte{}, nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
