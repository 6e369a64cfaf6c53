// Package testservers starts PostgreSQL, Redis and RabbitMQ servers of a
// test's own, on free ports and in directories of their own, with TLS
// listeners only, so that tests can check what the service does over TLS
// without touching the shared servers. Each server is stopped by Close.
//
//	pg, err := testservers.StartPostgres(dir, testservers.TLS{CertFile: c, KeyFile: k, CAFile: ca})
//	defer pg.Close()
package testservers

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/viswals/viswals/internal/wait"
)

// TLS are the PEM files a server's TLS listener uses.
type TLS struct {
	CertFile, KeyFile string
	CAFile            string // the CA that signed CertFile
}

// config is a client configuration trusting the CA, for readiness checks.
func (t TLS) config() (*tls.Config, error) {
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", t.CAFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}, nil
}

// ---- PostgreSQL ----

// PGBinDir finds the PostgreSQL server binaries (initdb, pg_ctl), which
// Debian keeps out of PATH, preferring the newest version.
func PGBinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found in PATH or /usr/lib/postgresql/*/bin")
}

// PGOwner is who runs a PostgreSQL server: initdb refuses root, so as
// root the cluster belongs to the postgres OS user.
type PGOwner struct {
	AsUser   string // "" to run as ourselves
	UID, GID int
}

// FindPGOwner returns ourselves, or the postgres user when we are root.
func FindPGOwner() (PGOwner, error) {
	if os.Geteuid() != 0 {
		return PGOwner{UID: os.Geteuid(), GID: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return PGOwner{}, fmt.Errorf("running as root, and initdb refuses root: need an OS user named postgres: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return PGOwner{AsUser: "postgres", UID: uid, GID: gid}, nil
}

// Command returns the argv that runs bin as the owner.
func (o PGOwner) Command(bin string, args ...string) (string, []string) {
	if o.AsUser == "" {
		return bin, args
	}
	return "runuser", append([]string{"-u", o.AsUser, "--", bin}, args...)
}

// Mkdir creates dir for the owner.
func (o PGOwner) Mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chown(dir, o.UID, o.GID)
}

// Postgres is a PostgreSQL server accepting only TLS connections, as user
// postgres without a password, on 127.0.0.1:Port.
type Postgres struct {
	Port     int
	bin, dir string
	owner    PGOwner
}

// StartPostgres makes a cluster in dir and starts it with ssl=on and a
// pg_hba.conf that refuses connections without TLS.
func StartPostgres(dir string, t TLS) (*Postgres, error) {
	bin, err := PGBinDir()
	if err != nil {
		return nil, err
	}
	owner, err := FindPGOwner()
	if err != nil {
		return nil, err
	}
	if err := owner.Mkdir(dir); err != nil {
		return nil, err
	}
	p := &Postgres{bin: bin, dir: dir, owner: owner}
	data := p.data()
	path, args := owner.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	if out, err := runIn(dir, env("LC_ALL=C.UTF-8"), path, args...); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// The server reads its key only when the key belongs to it and no one
	// else may read it.
	for src, name := range map[string]string{t.CertFile: "server.crt", t.KeyFile: "server.key", t.CAFile: "ca.crt"} {
		if err := copyFile(src, filepath.Join(data, name), owner); err != nil {
			return nil, err
		}
	}
	hba := "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return nil, err
	}
	if p.Port, err = FreePort(); err != nil {
		return nil, err
	}
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c ssl_ca_file=ca.crt", p.Port, dir)
	if err := p.pgctl("-l", filepath.Join(dir, "server.log"), "-w", "-t", "120", "-o", opts, "start"); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Postgres) data() string { return filepath.Join(p.dir, "data") }

func (p *Postgres) pgctl(args ...string) error {
	path, argv := p.owner.Command(filepath.Join(p.bin, "pg_ctl"), append([]string{"-D", p.data()}, args...)...)
	if out, err := runIn(p.dir, env(), path, argv...); err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, tail(filepath.Join(p.dir, "server.log"), 20))
	}
	return nil
}

// URL is the server's URL verified against caFile (sslmode=verify-full).
func (p *Postgres) URL(caFile string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=verify-full&sslrootcert=%s", p.Port, caFile)
}

// Close stops the server.
func (p *Postgres) Close() { _ = p.pgctl("-m", "immediate", "-w", "-t", "60", "stop") }

// ---- Redis ----

// Redis is a redis-server without persistence that listens only with
// TLS, on 127.0.0.1:Port, and asks clients for no certificate.
type Redis struct {
	Port int
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// StartRedis starts redis-server in dir and returns once it answers a
// PING over TLS.
func StartRedis(dir string, t TLS) (*Redis, error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found in PATH")
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	r := &Redis{Port: port, done: make(chan struct{}), log: filepath.Join(dir, "redis.log")}
	r.cmd = exec.Command(path, "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", t.CertFile, "--tls-key-file", t.KeyFile, "--tls-ca-cert-file", t.CAFile, "--tls-auth-clients", "no",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", r.log, "--protected-mode", "no")
	r.cmd.Dir, r.cmd.Env = dir, env()
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	cfg, err := t.config()
	if err != nil {
		r.Close()
		return nil, err
	}
	err = wait.Poll(60*time.Second, fmt.Sprintf("redis-server to answer PING over TLS on port %d", port), func() (bool, string, error) {
		select {
		case <-r.done:
			return false, "", errors.New("redis-server exited")
		default:
		}
		err := redisPing(fmt.Sprintf("127.0.0.1:%d", port), cfg)
		return err == nil, fmt.Sprint(err), nil
	})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("%w\n%s", err, tail(r.log, 20))
	}
	return r, nil
}

// redisPing sends PING in the protocol's inline form and expects PONG.
func redisPing(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	n, err := conn.Read(buf)
	if !bytes.HasPrefix(buf[:n], []byte("+PONG")) {
		return fmt.Errorf("PING answered %q (%v)", buf[:n], err)
	}
	return nil
}

// Close kills the server and waits for it.
func (r *Redis) Close() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

// ---- RabbitMQ ----

// RabbitScripts finds rabbitmq-server and rabbitmqctl. Debian's copies in
// /usr/sbin switch to the rabbitmq user when run as root, which would lose
// our environment and cookie; the real scripts are in /usr/lib/rabbitmq/bin.
func RabbitScripts() (server, ctl string, err error) {
	s, c := "/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmqctl"
	if _, err := os.Stat(s); err == nil {
		return s, c, nil
	}
	s, err1 := exec.LookPath("rabbitmq-server")
	c, err2 := exec.LookPath("rabbitmqctl")
	if err1 != nil || err2 != nil {
		return "", "", errors.New("rabbitmq-server and rabbitmqctl not found")
	}
	return s, c, nil
}

// Rabbit is a RabbitMQ node of its own (node name, distribution port,
// data, logs and Erlang cookie) with one AMQP listener, over TLS, on
// 127.0.0.1:Port; user guest, password guest.
type Rabbit struct {
	Port     int
	Node     string
	dir, ctl string
	env      []string
	cmd      *exec.Cmd
	done     chan struct{}
}

// StartRabbit starts a node in dir and returns once it accepts AMQP over
// TLS; ready reports whether it does (an amqps dial, which this package
// leaves to the caller so as not to depend on an AMQP client).
func StartRabbit(dir string, t TLS, ready func(url string) error) (*Rabbit, error) {
	server, ctl, err := RabbitScripts()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	n := &Rabbit{dir: dir, ctl: ctl, done: make(chan struct{}), Node: fmt.Sprintf("tls%d@localhost", os.Getpid())}
	if n.Port, err = FreePort(); err != nil {
		return nil, err
	}
	distPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	nodeEnv, err := RabbitNodeFiles(dir, n.Node, distPort, fmt.Sprintf("listeners.tcp = none\nlisteners.ssl.default = 127.0.0.1:%d\nloopback_users = none\n"+
		"ssl_options.cacertfile = %s\nssl_options.certfile = %s\nssl_options.keyfile = %s\n"+
		"ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n", n.Port, t.CAFile, t.CertFile, t.KeyFile))
	if err != nil {
		return nil, err
	}
	// HOME holds the Erlang cookie of this node and of its rabbitmqctl.
	n.env = env(append([]string{"HOME=" + dir}, nodeEnv...)...)
	out, err := os.Create(filepath.Join(dir, "server.out"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	n.cmd = exec.Command(server)
	n.cmd.Dir, n.cmd.Env, n.cmd.Stdout, n.cmd.Stderr = dir, n.env, out, out
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers go with it
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start rabbitmq-server: %w", err)
	}
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	url := n.URL(t.CAFile)
	err = wait.Poll(3*time.Minute, fmt.Sprintf("RabbitMQ node %s to accept AMQP over TLS on port %d", n.Node, n.Port), func() (bool, string, error) {
		select {
		case <-n.done:
			return false, "", errors.New("rabbitmq-server exited")
		default:
		}
		err := ready(url)
		return err == nil, fmt.Sprint(err), nil
	})
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("%w\n%s\n%s", err, tail(filepath.Join(dir, "server.out"), 20), tail(filepath.Join(dir, "log", n.Node+".log"), 20))
	}
	return n, nil
}

// URL is the node's amqps URL, verified against caFile.
func (n *Rabbit) URL(caFile string) string {
	return fmt.Sprintf("amqps://guest:guest@localhost:%d/?cacertfile=%s", n.Port, caFile)
}

// Ctl runs rabbitmqctl against the node.
func (n *Rabbit) Ctl(args ...string) (string, error) {
	return runIn(n.dir, n.env, n.ctl, append([]string{"-n", n.Node}, args...)...)
}

// Close stops the node: with rabbitmqctl stop, killed when that fails.
func (n *Rabbit) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := exec.CommandContext(ctx, n.ctl, "-n", n.Node, "stop")
	stop.Dir, stop.Env = n.dir, n.env
	if stop.Run() == nil {
		select {
		case <-n.done:
			return
		case <-time.After(30 * time.Second):
		}
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.done
}

// ---- helpers ----

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now,
// for a server started next. It is picked at random below the kernel's
// ephemeral range: a port from that range (what listening on port 0
// gives) is handed to the next socket that listens on port 0 or connects
// out, anywhere on the machine, and on a busy machine one of them may take
// it before the server listens, which then fails with "address already in
// use". Below the range only another explicit choice like this one can.
func FreePort() (int, error) {
	if low := ephemeralLow(); low-minFreePort >= 1000 {
		for range 50 {
			port := minFreePort + rand.IntN(low-minFreePort)
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue // in use
			}
			ln.Close()
			return port, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// minFreePort keeps FreePort above the ports that services commonly use.
const minFreePort = 10000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		_, _ = fmt.Sscan(string(b), &low) // leaves low as it was on failure
	}
	return low
}

// env is a minimal environment plus set: the servers must not inherit
// the test's settings (PG*, RABBITMQ_*, a HOME with another cookie).
// RabbitNodeFiles writes what a RabbitMQ node of a test's own reads in dir
// (config, an empty env file, no plugins) and returns the RABBITMQ_*
// settings that point the node named node at them.
func RabbitNodeFiles(dir, node string, distPort int, config string) ([]string, error) {
	conf := filepath.Join(dir, "rabbitmq.conf")
	files := map[string]string{
		conf:                              config,
		filepath.Join(dir, "env.conf"):    "",
		filepath.Join(dir, "plugins.erl"): "[].\n",
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	return []string{
		"RABBITMQ_NODENAME=" + node,
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(distPort),
		"RABBITMQ_CONFIG_FILE=" + conf,
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(dir, "env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(dir, "plugins.erl"),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
		// Exec the VM instead of keeping a shell in front of it, so the
		// process started is the node itself.
		"RUNNING_UNDER_SYSTEMD=true",
	}, nil
}

func env(set ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"}, set...)
}

func runIn(dir string, env []string, path string, args ...string) (string, error) {
	cmd := exec.Command(path, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// copyFile copies src to dst for owner, readable by owner only.
func copyFile(src, dst string, owner PGOwner) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		return err
	}
	return os.Chown(dst, owner.UID, owner.GID)
}

// tail returns the last n lines of the file at path, or why it cannot.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
