package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/config"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rabbitmq/rmqtest"
)

const header = "id,first_name,last_name,email_address,created_at,deleted_at,merged_at,parent_user_id\n"

func runProducer(t *testing.T, env map[string]string, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		msg  string
	}{
		{name: "no file argument", args: nil, code: 2, msg: "want exactly one FILE"},
		{name: "bad flag", args: []string{"--batch", "-3", "x.csv"}, code: 2, msg: "--batch"},
		{name: "help", args: []string{"--help"}, code: 0},
		{name: "missing file", args: []string{filepath.Join(dir, "nope.csv")}, code: 1, msg: "open input"},
		{name: "broker unreachable", args: []string{"--reconnect-timeout", "300ms", "--rejects", filepath.Join(dir, "r.csv"), "-"},
			env: map[string]string{"RABBITMQ_CONN_URL": "amqp://guest:guest@127.0.0.1:1/"}, code: 1, msg: "RabbitMQ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := runProducer(t, tt.env, header+"1,a,b,a@b.c,1,-1,-1,-1\n", tt.args...)
			var stderr bytes.Buffer
			assert.Equal(t, tt.code, config.ExitCode("producer", err, &stderr), "err: %v", err)
			assert.Contains(t, stderr.String(), tt.msg)
		})
	}
}

func TestPublishesGoodRowsAndRejectsBadOnes(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"gob", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			url, queue := rmqtest.NewQueue(t)
			dir := t.TempDir()
			in := filepath.Join(dir, "in.csv")
			csv := header +
				"1,Ann,Lee,ann@example.com,1600000000000,-1,-1,-1\n" +
				"2,Bad,Email,nope,1600000000000,-1,-1,-1\n" +
				"3,Cy,Doe,cy@example.com,1600000000000,,,\n" +
				"4,Short\n" +
				"5,Di,Fox,di@example.com,1600000000000,-1,-1,-1\n"
			require.NoError(t, os.WriteFile(in, []byte(csv), 0o600))
			env := map[string]string{"RABBITMQ_CONN_URL": url, "RABBITMQ_QUEUE_NAME": queue}

			stdout, stderr, err := runProducer(t, env, "", "--batch", "2", "--format", format, in)
			require.NoError(t, err, stderr)
			assert.Contains(t, stdout, "read=5 published=3 rejected=2 messages=2")

			rejects, err := os.ReadFile(filepath.Join(dir, "in.rejects.csv"))
			require.NoError(t, err)
			lines := strings.Split(strings.TrimSpace(string(rejects)), "\n")
			require.Len(t, lines, 3)
			assert.True(t, strings.HasPrefix(lines[0], "line,reason,id"))
			assert.True(t, strings.HasPrefix(lines[1], "3,"), lines[1])
			assert.True(t, strings.HasPrefix(lines[2], "5,"), lines[2])

			// The broker confirmed both messages before run returned.
			var ids []int64
			for range 2 {
				d, ok := rmqtest.Get(t, url, queue)
				require.True(t, ok, "message missing from queue")
				recs, err := rabbitmq.Decode(d.ContentType, d.Body)
				require.NoError(t, err)
				for _, r := range recs {
					ids = append(ids, r.ID)
					assert.NotZero(t, r.Version.Load)
				}
				assert.Equal(t, uint8(2), d.DeliveryMode, "persistent")
			}
			assert.Equal(t, []int64{1, 3, 5}, ids)
		})
	}
}

func TestStdinAndRejectsFlag(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	rejects := filepath.Join(t.TempDir(), "bad.csv")
	stdout, stderr, err := runProducer(t, map[string]string{"RABBITMQ_CONN_URL": url, "RABBITMQ_QUEUE_NAME": queue},
		header+"1,a,b,a@b.c,1,-1,-1,-1\nzz,a,b,a@b.c,1,-1,-1,-1\n", "--rejects", rejects, "-")
	require.NoError(t, err, stderr)
	assert.Contains(t, stdout, "read=2 published=1 rejected=1")
	b, err := os.ReadFile(rejects)
	require.NoError(t, err)
	assert.Contains(t, string(b), `3,"id: ""zz"" is not an integer"`)
}

// Rejected rows hold emails: the rejects file is the owner's only, also
// when it existed before with wider permissions.
func TestRejectsFileIsPrivate(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	dir := t.TempDir()
	fresh, existing := filepath.Join(dir, "fresh.csv"), filepath.Join(dir, "existing.csv")
	require.NoError(t, os.WriteFile(existing, []byte("old"), 0o644))
	require.NoError(t, os.Chmod(existing, 0o644)) // whatever the umask
	for _, path := range []string{fresh, existing} {
		_, stderr, err := runProducer(t, map[string]string{"RABBITMQ_CONN_URL": url, "RABBITMQ_QUEUE_NAME": queue},
			header+"zz,a,b,a@b.c,1,-1,-1,-1\n", "--rejects", path, "-")
		require.NoError(t, err, stderr)
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "%s", filepath.Base(path))
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Contains(t, string(b), "a@b.c")
	}
}

func TestDefaultRejectsPath(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "data/users.rejects.csv", defaultRejectsPath("data/users.csv"))
	assert.Equal(t, "export.rejects.csv", defaultRejectsPath("export"))
	assert.Equal(t, "rejects.csv", defaultRejectsPath("-"))
}
