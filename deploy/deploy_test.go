// Package deploy_test checks the repository's deployment files (Dockerfile,
// compose files) from the repository root.
package deploy_test

// No Docker engine runs where the tests run, so the Dockerfile and the
// compose file are checked here: the binaries they name build statically,
// and the names, ports and variables they use are the ones the code reads.

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/rabbitmq"
)

// root is the repository root, where the Dockerfile, the compose files and
// the README live; tests run in their package's folder.
const root = ".."

// composeSecrets are the variables the compose file requires (it has no
// default secrets), with values of the forms the README's quick start makes.
var composeSecrets = map[string]string{
	"ENCRYPTION_KEY":             "u3Y0mXkq2Zc0n8GgD3+v6V7bq1mJ5yQdC9sLx2wRfTE=",
	"INGEST_SIGNING_KEY":         "pR0x8w1vJ6kz9Qe2Lb4nT7sYc3Hm5Ud+Fa0Gi8Ko1Wq=",
	"POSTGRES_PASSWORD":          "5f1c0a9e7d2b4c6a8e0f1d3b5a7c9e2f4b6d8a0c1e3f5a7b",
	"VISWALS_DB_PASSWORD":        "0a9e7d2b4c6a8e0f1d3b5a7c9e2f4b6d8a0c1e3f5a7b5f1c",
	"RABBITMQ_CONSUMER_PASSWORD": "7d2b4c6a8e0f1d3b5a7c9e2f4b6d8a0c1e3f5a7b5f1c0a9e",
	"RABBITMQ_PRODUCER_PASSWORD": "4c6a8e0f1d3b5a7c9e2f4b6d8a0c1e3f5a7b5f1c0a9e7d2b",
}

// loadCompose loads the compose files with compose-go, the loader of
// `docker compose` itself: schema validation, interpolation of env (and
// nothing from the machine's environment or a .env file), merging of the
// files in order.
func loadCompose(env map[string]string, files ...string) (*types.Project, error) {
	var vars []string
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f
		if !filepath.IsAbs(f) {
			paths[i] = filepath.Join(root, f)
		}
	}
	opts, err := cli.NewProjectOptions(paths, cli.WithWorkingDirectory(root), cli.WithEnv(vars), cli.WithName("viswals"))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func readCompose(t *testing.T, files ...string) *types.Project {
	t.Helper()
	if len(files) == 0 {
		files = []string{"docker-compose.yml"}
	}
	p, err := loadCompose(composeSecrets, files...)
	require.NoError(t, err)
	return p
}

// env returns the value compose gives variable v of service s ("" when unset).
func env(s types.ServiceConfig, v string) string {
	if p := s.Environment[v]; p != nil {
		return *p
	}
	return ""
}

// dockerfileBinaries returns the ./cmd/... packages the Dockerfile builds.
func dockerfileBinaries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	df := string(b)
	assert.Contains(t, df, "CGO_ENABLED=0", "binaries must be static")
	assert.Regexp(t, `(?m)^USER \S+`, df, "the final image must not run as root")
	assert.Regexp(t, `(?m)^FROM .* AS build`, df, "multi-stage build")
	return regexp.MustCompile(`\./cmd/(\w+)`).FindAllString(df, -1)
}

// TestDeployment checks the compose file, then builds the binaries as the
// Dockerfile does and checks the compose file against what they read.
func TestDeployment(t *testing.T) {
	t.Parallel()
	pkgs := dockerfileBinaries(t)
	require.ElementsMatch(t, []string{"./cmd/producer", "./cmd/consumer", "./cmd/gencsv"}, pkgs)
	t.Run("compose file", checkCompose)

	// Static, trimmed binaries share no build cache with the tests'
	// builds: on a fresh machine this is a second compile of everything.
	testenv.SkipShort(t, "builds the binaries as the Dockerfile does (CGO_ENABLED=0, -trimpath)")
	bin := t.TempDir()
	cmd := exec.Command("go", append([]string{"build", "-trimpath", "-o", bin + "/"}, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)

	t.Run("binaries are static", func(t *testing.T) {
		for _, p := range pkgs {
			f, err := elf.Open(filepath.Join(bin, filepath.Base(p)))
			require.NoError(t, err)
			for _, prog := range f.Progs {
				assert.NotEqual(t, elf.PT_INTERP, prog.Type, "%s is dynamically linked", p)
			}
			f.Close()
		}
	})
	t.Run("compose sets only what the binaries read", func(t *testing.T) { checkComposeEnv(t, bin) })
	t.Run("README lists every setting", func(t *testing.T) {
		readme, err := os.ReadFile(filepath.Join(root, "README.md"))
		require.NoError(t, err)
		for _, name := range []string{"consumer", "producer"} {
			for v := range settingsOf(helpText(t, filepath.Join(bin, name))) {
				if strings.HasSuffix(v, "_FILE") {
					continue // documented beside the setting it holds
				}
				assert.Contains(t, string(readme), "| `"+v+"` ", "README's configuration table lacks %s", v)
			}
		}
	})
}

// settingsOf returns the environment variables a --help text names: each
// flag ends with "(env NAME)" or, for a secret, "(env NAME or NAME_FILE)".
func settingsOf(help string) map[string]bool {
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\(env (\w+)(?: or (\w+))?\)`).FindAllStringSubmatch(help, -1) {
		names[m[1]] = true
		if m[2] != "" {
			names[m[2]] = true
		}
	}
	return names
}

// helpText returns a binary's --help output, which lists every setting.
func helpText(t *testing.T, path string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(path, "--help")
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Run(), "%s --help", path)
	return out.String()
}

func checkCompose(t *testing.T) {
	c := readCompose(t)
	for _, name := range []string{"postgres", "redis", "rabbitmq", "consumer", "producer"} {
		require.Contains(t, c.Services, name)
	}
	for _, name := range []string{"postgres", "redis", "rabbitmq"} {
		s := c.Services[name]
		assert.Regexp(t, `:\d+\.\d+`, s.Image, "%s image must be pinned to a version", name)
		require.NotNil(t, s.HealthCheck, "%s needs a health check", name)
		assert.NotEmpty(t, s.HealthCheck.Test, "%s needs a health check", name)
	}
	assert.Contains(t, c.Volumes, "pgdata", "Postgres keeps its data in a named volume")

	consumer := c.Services["consumer"]
	for _, v := range []string{"POSTGRES_CONN_URL", "REDIS_CONN_URL", "RABBITMQ_CONN_URL", "RABBITMQ_QUEUE_NAME", "CONSUMER_PORT", "ENCRYPTION_KEY", "INGEST_SIGNING_KEY", "MIGRATE_DB"} {
		assert.Contains(t, consumer.Environment, v)
	}
	host, port, err := net.SplitHostPort(env(consumer, "CONSUMER_PORT"))
	require.NoError(t, err, "CONSUMER_PORT is host:port; a bare port would listen on the container's loopback only")
	assert.Contains(t, []string{"", "0.0.0.0", "::"}, host, "the consumer listens on every interface of the container, or the published port reaches nothing")
	require.Len(t, consumer.Ports, 1)
	assert.Equal(t, types.ServicePortConfig{Mode: "ingress", HostIP: "127.0.0.1", Target: 8080, Published: port, Protocol: "tcp"}, consumer.Ports[0], "the API port is published on the host's loopback")
	assert.Contains(t, strings.Split(env(consumer, "ALLOWED_HOSTS"), ","), "localhost", "the published port is reached as localhost")
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	assert.Contains(t, string(df), "EXPOSE "+port)
	assert.Equal(t, []string{"/usr/local/bin/consumer", "healthcheck"}, []string(consumer.HealthCheck.Test[1:]), "health check runs the binary's healthcheck subcommand")
	assert.Equal(t, "service_healthy", consumer.DependsOn["postgres"].Condition)

	// Both use the same queue and signing key, and the producer loads the
	// bundled sample.
	producer := c.Services["producer"]
	assert.Equal(t, env(consumer, "RABBITMQ_QUEUE_NAME"), env(producer, "RABBITMQ_QUEUE_NAME"))
	assert.Equal(t, composeSecrets["INGEST_SIGNING_KEY"], env(consumer, "INGEST_SIGNING_KEY"))
	assert.Equal(t, composeSecrets["INGEST_SIGNING_KEY"], env(producer, "INGEST_SIGNING_KEY"))
	assert.Equal(t, consumer.Image, producer.Image)
	assert.Equal(t, []string{"/usr/local/bin/producer"}, []string(producer.Entrypoint))
	require.Len(t, producer.Command, 1)
	assert.True(t, strings.HasPrefix(producer.Command[0], "/data/"))
	assert.FileExists(t, filepath.Join(root, "data", strings.TrimPrefix(producer.Command[0], "/data/")))
	assert.Contains(t, string(df), "data/ /data/")
	// The hostnames in the URLs are the compose service names.
	for _, v := range []string{"POSTGRES_CONN_URL", "REDIS_CONN_URL", "RABBITMQ_CONN_URL"} {
		u, err := url.Parse(env(consumer, v))
		require.NoError(t, err, v)
		assert.Contains(t, c.Services, u.Hostname(), "%s points at %q, not a compose service", v, u.Hostname())
	}
	// The producer's broker is the consumer's.
	pu, err := url.Parse(env(producer, "RABBITMQ_CONN_URL"))
	require.NoError(t, err)
	cu, err := url.Parse(env(consumer, "RABBITMQ_CONN_URL"))
	require.NoError(t, err)
	assert.Equal(t, cu.Host, pu.Host)
}

// Each service logs in with credentials of its own, from the variables
// the quick start makes; none uses a stock account.
func TestComposeCredentials(t *testing.T) {
	t.Parallel()
	c := readCompose(t)
	consumer, producer := c.Services["consumer"], c.Services["producer"]
	userOf := func(s types.ServiceConfig, v string) (user, pass string) {
		u, err := url.Parse(env(s, v))
		require.NoError(t, err, v)
		p, _ := u.User.Password()
		return u.User.Username(), p
	}
	user, pass := userOf(consumer, "RABBITMQ_CONN_URL")
	assert.Equal(t, "consumer", user)
	assert.Equal(t, composeSecrets["RABBITMQ_CONSUMER_PASSWORD"], pass)
	user, pass = userOf(producer, "RABBITMQ_CONN_URL")
	assert.Equal(t, "producer", user)
	assert.Equal(t, composeSecrets["RABBITMQ_PRODUCER_PASSWORD"], pass)
	user, pass = userOf(consumer, "POSTGRES_CONN_URL")
	assert.Equal(t, "viswals", user, "not the superuser")
	assert.Equal(t, composeSecrets["VISWALS_DB_PASSWORD"], pass)

	// The broker makes those users, the database that role: each from
	// the same variable, by a script compose mounts.
	rabbit, pg := c.Services["rabbitmq"], c.Services["postgres"]
	for _, v := range []string{"RABBITMQ_CONSUMER_PASSWORD", "RABBITMQ_PRODUCER_PASSWORD"} {
		assert.Equal(t, composeSecrets[v], env(rabbit, v))
	}
	assert.Equal(t, composeSecrets["VISWALS_DB_PASSWORD"], env(pg, "VISWALS_DB_PASSWORD"))
	assert.Equal(t, composeSecrets["POSTGRES_PASSWORD"], env(pg, "POSTGRES_PASSWORD"))
	mounts := map[string]string{}
	for _, s := range []types.ServiceConfig{rabbit, pg} {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				assert.FileExists(t, v.Source, "%s mounts a file that exists", s.Name)
				mounts[v.Target] = filepath.Base(v.Source)
			}
		}
	}
	assert.Equal(t, "postgres-init.sh", mounts["/docker-entrypoint-initdb.d/10-viswals.sh"])
	assert.Equal(t, "rabbitmq-init.sh", mounts[rabbit.Command[0]], "the broker's command is its init script")
	assert.Equal(t, "rabbitmq.conf", mounts["/etc/rabbitmq/conf.d/20-viswals.conf"])
	for _, script := range []string{"postgres-init.sh", "rabbitmq-init.sh"} {
		fi, err := os.Stat(filepath.Join(root, "deploy", "compose", script))
		require.NoError(t, err)
		assert.NotZero(t, fi.Mode().Perm()&0o111, "%s is executable", script)
	}
	conf, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "rabbitmq.conf"))
	require.NoError(t, err)
	assert.Contains(t, string(conf), fmt.Sprintf("max_message_size = %d", rabbitmq.MaxBodyBytes), "the broker's limit is the consumer's")
	init, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "rabbitmq-init.sh"))
	require.NoError(t, err)
	assert.Contains(t, string(init), "delete_user guest")
}

// Compose has no default secret: each missing one stops it with a message
// saying how to make it.
func TestComposeRequiresSecrets(t *testing.T) {
	t.Parallel()
	for v := range composeSecrets {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			env := maps.Clone(composeSecrets)
			delete(env, v)
			_, err := loadCompose(env, "docker-compose.yml")
			require.Error(t, err)
			assert.Contains(t, err.Error(), v)
			assert.Contains(t, err.Error(), "openssl rand")
		})
	}
}

// Only the API's port is published, on the host's loopback; the ports
// override publishes the backing services on the loopback too, never on
// every interface.
func TestComposePorts(t *testing.T) {
	t.Parallel()
	for _, files := range [][]string{{"docker-compose.yml"}, {"docker-compose.yml", "docker-compose.ports.yml"}} {
		c := readCompose(t, files...)
		published := map[string][]uint32{}
		for name, s := range c.Services {
			for _, p := range s.Ports {
				assert.Equal(t, "127.0.0.1", p.HostIP, "%v: %s publishes port %d beyond the loopback", files, name, p.Target)
				published[name] = append(published[name], p.Target)
			}
		}
		if len(files) == 1 {
			assert.Equal(t, map[string][]uint32{"consumer": {8080}}, published, "only the API is published")
			continue
		}
		assert.Equal(t, []uint32{5672, 15672}, published["rabbitmq"])
		assert.Equal(t, []uint32{5432}, published["postgres"])
		assert.Equal(t, []uint32{6379}, published["redis"])
	}
}

// A compose file the schema refuses is refused by the test's loader too.
func TestComposeSchemaValidated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	require.NoError(t, os.WriteFile(bad, []byte("services:\n  x:\n    image: a\n    ports: {not: a list}\n    restartt: always\n"), 0o600))
	_, err := loadCompose(nil, bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ports")
}

// checkComposeEnv checks that every variable compose sets on a binary is a
// setting that binary reads.
func checkComposeEnv(t *testing.T, bin string) {
	c := readCompose(t)
	for _, name := range []string{"consumer", "producer"} {
		reads := settingsOf(helpText(t, filepath.Join(bin, name)))
		for v := range c.Services[name].Environment {
			assert.True(t, reads[v], "compose sets %s on the %s, which does not read it", v, name)
		}
	}
}
