package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/fakeclock"
)

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	key, line, err := GenerateKey("ci-reader", RoleReader)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(key, KeyPrefix))
	assert.Len(t, key, keyLen)
	assert.True(t, wellFormedKey(key))
	sum := sha256.Sum256([]byte(key))
	assert.Equal(t, "ci-reader reader "+hex.EncodeToString(sum[:]), line)
	assert.NotContains(t, line, key[len(KeyPrefix):])

	entries, err := ParseKeys(strings.NewReader(line + "\n"))
	require.NoError(t, err)
	assert.Equal(t, []KeyEntry{{Name: "ci-reader", Role: RoleReader, Hash: sum}}, entries)

	other, _, err := GenerateKey("ci-reader", RoleReader)
	require.NoError(t, err)
	assert.NotEqual(t, key, other, "every key is new")

	for _, bad := range []struct {
		name string
		role Role
	}{{"", RoleReader}, {"has space", RoleReader}, {"ada@example.com", RoleReader}, {strings.Repeat("n", 65), RoleReader}, {"ok", RoleNone}} {
		_, _, err := GenerateKey(bad.name, bad.role)
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%q %v", bad.name, bad.role)
	}
}

const (
	hashA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	hashB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestParseKeys(t *testing.T) {
	t.Parallel()
	pastedKey := KeyPrefix + strings.Repeat("Q", 43)
	tests := []struct {
		name    string
		file    string
		names   []string // of the valid entries
		wantErr []string // parts of the error, in order
		never   string   // must not be in the error
	}{
		{name: "empty", file: ""},
		{name: "comments and blanks", file: "# NAME ROLE SHA256\n\n   \n\t# indented comment\nci reader " + hashA + "\n", names: []string{"ci"}},
		{name: "tabs and CRLF", file: "ci\treader\t" + hashA + "\r\nops  admin  " + strings.ToUpper(hashB) + "\r\n", names: []string{"ci", "ops"}},
		{name: "no final newline", file: "ci pii " + hashA, names: []string{"ci"}},
		{name: "too few fields", file: "ci reader\n", wantErr: []string{"line 1: want NAME ROLE SHA256-HEX, got 2 fields"}},
		{name: "too many fields", file: "ci reader " + hashA + " extra\n", wantErr: []string{"line 1: want NAME ROLE SHA256-HEX, got 4 fields"}},
		{name: "trailing comment is a field", file: "ci reader " + hashA + " # note\n", wantErr: []string{"line 1: want"}},
		{name: "unknown role", file: "\nci root " + hashA + "\n", wantErr: []string{"line 2: role must be reader, pii or admin"}},
		{name: "short hash", file: "ci reader abc\n", wantErr: []string{"line 1: the hash must be 64 hex digits"}},
		{name: "not hex", file: "ci reader " + strings.Repeat("z", 64) + "\n", wantErr: []string{"line 1: the hash must be 64 hex digits"}},
		{name: "bad name", file: "ada@example.com reader " + hashA + "\n", wantErr: []string{"line 1: name must hold only"}, never: "ada@example.com"},
		{name: "duplicate name", file: "ci reader " + hashA + "\nci admin " + hashB + "\n", names: []string{"ci"}, wantErr: []string{`line 2: name "ci" is already used on line 1`}},
		{name: "duplicate key", file: "ci reader " + hashA + "\nops admin " + hashA + "\n", names: []string{"ci"}, wantErr: []string{"line 2: the same key hash is already on line 1"}},
		{name: "a key pasted instead of its hash", file: "ci reader " + pastedKey + "\n", wantErr: []string{"line 1: holds an API key itself"}, never: pastedKey[4:]},
		{name: "a key pasted alone", file: pastedKey + "\n", wantErr: []string{"line 1: holds an API key itself"}, never: pastedKey[4:]},
		{
			name:    "every bad line reported, good lines kept",
			file:    "ci reader " + hashA + "\nbroken\n# ok\nops admin " + hashB + "\nx y z\n",
			names:   []string{"ci", "ops"},
			wantErr: []string{"line 2: want", "line 5: role must be"},
		},
		{name: "line too long", file: "ci reader " + hashA + "\n" + strings.Repeat("x", 70<<10) + "\n", names: []string{"ci"}, wantErr: []string{"line 2: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entries, err := ParseKeys(strings.NewReader(tt.file))
			var names []string
			for _, e := range entries {
				names = append(names, e.Name)
			}
			assert.Equal(t, tt.names, names)
			if len(tt.wantErr) == 0 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			msg := err.Error()
			at := 0
			for _, part := range tt.wantErr {
				i := strings.Index(msg[at:], part)
				require.GreaterOrEqual(t, i, 0, "%q not in %q (after byte %d)", part, msg, at)
				at += i + len(part)
			}
			if tt.never != "" {
				assert.NotContains(t, msg, tt.never)
			}
		})
	}
}

// FuzzParseKeys: any file parses without panic; every entry returned is
// valid; an error never repeats a key found in the file.
func FuzzParseKeys(f *testing.F) {
	f.Add("ci reader " + hashA + "\n# c\n\nops admin " + hashB)
	f.Add("ci reader\n")
	f.Add(KeyPrefix + strings.Repeat("A", 43))
	f.Add("a b c d\r\n\t#x")
	f.Fuzz(func(t *testing.T, file string) {
		entries, err := ParseKeys(strings.NewReader(file))
		seen := map[string]bool{}
		for _, e := range entries {
			if validName(e.Name) != nil || !e.Role.Valid() || seen[e.Name] {
				t.Fatalf("invalid entry %+v", e)
			}
			seen[e.Name] = true
			again, err := ParseKeys(strings.NewReader(e.String()))
			if err != nil || len(again) != 1 || again[0] != e {
				t.Fatalf("entry %+v does not round-trip: %v %v", e, again, err)
			}
		}
		if err != nil {
			for _, f := range strings.Fields(file) {
				if strings.HasPrefix(f, KeyPrefix) && len(f) > len(KeyPrefix)+4 && strings.Contains(err.Error(), f) {
					t.Fatalf("error repeats a key: %v", err)
				}
			}
		}
	})
}

// keysFile is a keys file in a test's own directory.
type keysFile struct {
	t     *testing.T
	path  string
	clock *fakeclock.Clock // for the file's re-reads
}

func newKeysFile(t *testing.T, content string) *keysFile {
	t.Helper()
	k := &keysFile{t: t, path: filepath.Join(t.TempDir(), "api-keys"), clock: fakeclock.New(time.Unix(1_700_000_000, 0))}
	k.write(content)
	return k
}

// write replaces the file atomically, as the package doc asks.
func (k *keysFile) write(content string) {
	k.t.Helper()
	tmp := k.path + ".tmp"
	require.NoError(k.t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(k.t, os.Rename(tmp, k.path))
}

func TestKeyFileLookup(t *testing.T) {
	t.Parallel()
	key, line, err := GenerateKey("ci", RolePII)
	require.NoError(t, err)
	f, err := OpenKeyFile(newKeysFile(t, "# keys\n"+line+"\n").path, KeyFileOptions{})
	require.NoError(t, err)

	p, err := f.Lookup(key)
	require.NoError(t, err)
	assert.Equal(t, Principal{Name: "ci", Role: RolePII, Kind: KindAPIKey}, p)

	flipped := []byte(key)
	last := len(flipped) - 2
	if flipped[last] >= 'a' && flipped[last] <= 'z' {
		flipped[last] -= 'a' - 'A'
	} else {
		flipped[last] = 'a'
	}
	tests := []struct {
		name, key, want string
	}{
		{"leading space", " " + key, "malformed API key"},
		{"trailing space", key + " ", "malformed API key"},
		{"trailing newline", key + "\n", "malformed API key"},
		{"upper case", strings.ToUpper(key), "malformed API key"},
		{"upper-case prefix", "VSK_" + key[len(KeyPrefix):], "malformed API key"},
		{"one character's case changed", string(flipped), "unknown or revoked API key"},
		{"padded", key + "=", "malformed API key"},
		{"truncated", key[:len(key)-1], "malformed API key"},
		{"prefix only", KeyPrefix, "malformed API key"},
		{"another key", KeyPrefix + strings.Repeat("A", 43), "unknown or revoked API key"},
		{"non-canonical base64 of the key", key[:len(key)-1] + "B", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.key == key {
				t.Skip("the change happens to give the same key")
			}
			_, err := f.Lookup(tt.key)
			require.Error(t, err)
			assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
			if tt.want != "" {
				assert.Equal(t, tt.want, err.Error())
			}
			assert.NotContains(t, err.Error(), key[len(KeyPrefix):len(KeyPrefix)+8])
		})
	}
}

func TestKeyFileReload(t *testing.T) {
	t.Parallel()
	keyA, lineA, err := GenerateKey("a", RoleReader)
	require.NoError(t, err)
	keyB, lineB, err := GenerateKey("b", RoleAdmin)
	require.NoError(t, err)
	file := newKeysFile(t, lineA+"\n"+lineB+"\n")
	var logs bytes.Buffer
	f, err := OpenKeyFile(file.path, KeyFileOptions{
		CheckEvery: time.Second,
		Now:        file.clock.Now,
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
	})
	require.NoError(t, err)
	ok := func(key, name string) {
		t.Helper()
		p, err := f.Lookup(key)
		require.NoError(t, err)
		assert.Equal(t, name, p.Name)
	}
	refused := func(key string) {
		t.Helper()
		_, err := f.Lookup(key)
		assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
	}
	ok(keyA, "a")
	ok(keyB, "b")

	// Deleting a line revokes its key once the check interval has passed.
	file.write(lineB + "\n")
	ok(keyA, "a") // not checked yet
	file.clock.Advance(time.Second)
	refused(keyA)
	ok(keyB, "b")
	_, present := f.Role("a")
	assert.False(t, present)

	// A role changed in place takes effect.
	file.write(strings.Replace(lineB, " admin ", " reader ", 1) + "\n")
	file.clock.Advance(time.Second)
	role, present := f.Role("b")
	assert.True(t, present)
	assert.Equal(t, RoleReader, role)

	// A malformed line refuses its own key only, and is logged by number.
	file.write(lineA + "\nb admin\n")
	file.clock.Advance(time.Second)
	ok(keyA, "a")
	refused(keyB)
	assert.Contains(t, logs.String(), "line 2: want NAME ROLE SHA256-HEX")
	logs.Reset()
	file.clock.Advance(time.Second)
	ok(keyA, "a")
	assert.Empty(t, logs.String(), "the same error is logged once")

	// An unreadable file refuses every key until it is back.
	require.NoError(t, os.Remove(file.path))
	file.clock.Advance(time.Second)
	refused(keyA)
	assert.Contains(t, logs.String(), "no such file")
	file.write(lineA + "\n" + lineB + "\n")
	file.clock.Advance(time.Second)
	ok(keyA, "a")
	ok(keyB, "b")
	assert.Contains(t, logs.String(), "valid again")
	assert.NotContains(t, logs.String(), keyA[len(KeyPrefix):])
	assert.NotContains(t, logs.String(), keyB[len(KeyPrefix):])
}

// A file rewritten with the same size within the same timestamp tick is
// still picked up by the periodic full read.
func TestKeyFileSameSizeSameTime(t *testing.T) {
	t.Parallel()
	keyA, lineA, err := GenerateKey("a", RoleReader)
	require.NoError(t, err)
	file := newKeysFile(t, lineA+"\n")
	st, err := os.Stat(file.path)
	require.NoError(t, err)
	f, err := OpenKeyFile(file.path, KeyFileOptions{Now: file.clock.Now})
	require.NoError(t, err)
	_, lineC, err := GenerateKey("a", RoleReader)
	require.NoError(t, err)
	file.write(lineC + "\n")
	require.NoError(t, os.Chtimes(file.path, st.ModTime(), st.ModTime()))
	file.clock.Advance(DefaultCheckEvery)
	_, err = f.Lookup(keyA)
	assert.NoError(t, err, "size and time unchanged: not read yet")
	file.clock.Advance(fullReadEvery)
	_, err = f.Lookup(keyA)
	assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
}

func TestOpenKeyFileErrors(t *testing.T) {
	t.Parallel()
	_, err := OpenKeyFile(filepath.Join(t.TempDir(), "missing"), KeyFileOptions{})
	assert.ErrorContains(t, err, "no such file")

	_, err = OpenKeyFile(newKeysFile(t, "ci reader "+hashA+"\nbad\n").path, KeyFileOptions{})
	assert.ErrorContains(t, err, "line 2:")

	_, err = OpenKeyFile(newKeysFile(t, strings.Repeat("#", maxKeyFileBytes+1)).path, KeyFileOptions{})
	assert.ErrorContains(t, err, "larger than")
}

// Lookups race with reloads without a data race (run with -race).
func TestKeyFileConcurrent(t *testing.T) {
	t.Parallel()
	key, line, err := GenerateKey("a", RoleReader)
	require.NoError(t, err)
	file := newKeysFile(t, line+"\n")
	f, err := OpenKeyFile(file.path, KeyFileOptions{CheckEvery: -1})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				_, err := f.Lookup(key)
				assert.NoError(t, err)
			}
		})
	}
	for i := range 50 {
		file.write(line + "\n" + strings.Repeat("#", i) + "\n")
	}
	wg.Wait()
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
