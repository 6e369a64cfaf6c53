// Package deploy_test checks the repository's deployment files (Dockerfile,
// compose files) from the repository root.
package deploy_test

// No Docker engine runs where the tests run, so the Dockerfile and the
// compose file are checked here: the binaries they name build statically,
// and the names, ports and variables they use are the ones the code reads.

import (
	"bytes"
	"debug/elf"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/viswals/viswals/internal/testenv"
)

// root is the repository root, where the Dockerfile, the compose files and
// the README live; tests run in their package's folder.
const root = ".."

type composeFile struct {
	Services map[string]struct {
		Build       any               `yaml:"build"`
		Image       string            `yaml:"image"`
		Entrypoint  []string          `yaml:"entrypoint"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(b, &c))
	return c
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
		assert.NotEmpty(t, s.Healthcheck.Test, "%s needs a health check", name)
	}
	assert.Contains(t, c.Volumes, "pgdata", "Postgres keeps its data in a named volume")

	consumer := c.Services["consumer"]
	for _, v := range []string{"POSTGRES_CONN_URL", "REDIS_CONN_URL", "RABBITMQ_CONN_URL", "RABBITMQ_QUEUE_NAME", "CONSUMER_PORT", "ENCRYPTION_KEY", "MIGRATE_DB"} {
		assert.Contains(t, consumer.Environment, v)
	}
	host, port, err := net.SplitHostPort(consumer.Environment["CONSUMER_PORT"])
	require.NoError(t, err, "CONSUMER_PORT is host:port; a bare port would listen on the container's loopback only")
	assert.Contains(t, []string{"", "0.0.0.0", "::"}, host, "the consumer listens on every interface of the container, or the published port reaches nothing")
	assert.Contains(t, consumer.Ports, "127.0.0.1:"+port+":"+port, "the API port is published on the host's loopback")
	assert.Contains(t, strings.Split(consumer.Environment["ALLOWED_HOSTS"], ","), "localhost", "the published port is reached as localhost")
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	assert.Contains(t, string(df), "EXPOSE "+port)
	assert.Equal(t, []string{"/usr/local/bin/consumer", "healthcheck"}, consumer.Healthcheck.Test[1:], "health check runs the binary's healthcheck subcommand")
	assert.Equal(t, "service_healthy", consumer.DependsOn["postgres"].Condition)

	// Both use the same queue, and the producer loads the bundled sample.
	producer := c.Services["producer"]
	assert.Equal(t, consumer.Environment["RABBITMQ_QUEUE_NAME"], producer.Environment["RABBITMQ_QUEUE_NAME"])
	assert.Equal(t, consumer.Image, producer.Image)
	assert.Equal(t, []string{"/usr/local/bin/producer"}, producer.Entrypoint)
	require.Len(t, producer.Command, 1)
	assert.True(t, strings.HasPrefix(producer.Command[0], "/data/"))
	assert.FileExists(t, filepath.Join(root, "data", strings.TrimPrefix(producer.Command[0], "/data/")))
	assert.Contains(t, string(df), "data/ /data/")
	// The hostnames in the URLs are the compose service names.
	for _, v := range []string{"POSTGRES_CONN_URL", "REDIS_CONN_URL", "RABBITMQ_CONN_URL"} {
		u := consumer.Environment[v]
		host := regexp.MustCompile(`@?([a-z]+):\d+`).FindStringSubmatch(strings.SplitN(u, "@", 2)[len(strings.SplitN(u, "@", 2))-1])
		require.NotNil(t, host, "%s=%s", v, u)
		assert.Contains(t, c.Services, host[1], "%s points at %q, not a compose service", v, host[1])
	}
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
