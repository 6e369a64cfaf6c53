package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/auth"
	"github.com/viswals/viswals/config"
)

func noEnv(string) string { return "" }

func TestAPIKeyCreate(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"apikey", "create", "--name", "ci-reader", "--role", "reader"}, noEnv, strings.NewReader(""), &stdout, &stderr)
	require.NoError(t, err)
	assert.Empty(t, stderr.String())
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	require.Len(t, lines, 2, "the key, then the line for the keys file: %q", stdout.String())
	key, line := lines[0], lines[1]
	assert.True(t, strings.HasPrefix(key, auth.KeyPrefix))
	sum := sha256.Sum256([]byte(key))
	assert.Equal(t, "ci-reader reader "+hex.EncodeToString(sum[:]), line)

	// The line, appended to a keys file, grants the key.
	path := filepath.Join(t.TempDir(), "api-keys")
	require.NoError(t, os.WriteFile(path, []byte("# keys\n"+line+"\n"), 0o600))
	keys, err := auth.OpenKeyFile(path, auth.KeyFileOptions{})
	require.NoError(t, err)
	p, err := auth.NewAuthenticator(keys, nil).Authenticate(context.Background(), key)
	require.NoError(t, err)
	assert.Equal(t, auth.Principal{Name: "ci-reader", Role: auth.RoleReader, Kind: auth.KindAPIKey}, p)
}

func TestAPIKeyUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string // in the error
		code int
	}{
		{"no verb", []string{"apikey"}, "want `apikey create", 2},
		{"unknown verb", []string{"apikey", "delete"}, "want `apikey create", 2},
		{"no name", []string{"apikey", "create", "--role", "pii"}, "--name is required", 2},
		{"no role", []string{"apikey", "create", "--name", "x"}, "--role is required", 2},
		{"unknown role", []string{"apikey", "create", "--name", "x", "--role", "root"}, `unknown role "root"`, 2},
		{"bad name", []string{"apikey", "create", "--name", "a b", "--role", "pii"}, "--name: name must hold only", 2},
		{"long name", []string{"apikey", "create", "--name", strings.Repeat("n", 65), "--role", "pii"}, "--name: name must be 1 to 64", 2},
		{"extra argument", []string{"apikey", "create", "--name", "x", "--role", "pii", "more"}, "unexpected arguments", 2},
		{"unknown flag", []string{"apikey", "create", "--nme", "x"}, "flag provided but not defined", 2},
		{"help", []string{"apikey", "create", "-h"}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, noEnv, strings.NewReader(""), &stdout, &stderr)
			var exit bytes.Buffer
			assert.Equal(t, tt.code, config.ExitCode("consumer", err, &exit))
			assert.Empty(t, stdout.String(), "stdout holds a key or nothing")
			if tt.want != "" {
				assert.ErrorContains(t, err, tt.want)
			} else {
				assert.Contains(t, stderr.String(), "usage: consumer apikey create")
			}
		})
	}
}
