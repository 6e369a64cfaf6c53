package redistest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"os/exec"

	"github.com/viswals/viswals/internal/wait"
)

// Sentinel is a Redis master of a test's own watched by one Redis
// Sentinel (redis-server --sentinel), both on free ports.
type Sentinel struct {
	Master     *Node
	SentinelAt *Node // the Sentinel process; Addr is where to ask it
	Name       string
}

// StartSentinel starts a master and a Sentinel that monitors it as name,
// and returns once the Sentinel names the master.
func StartSentinel(dir, name string) (*Sentinel, error) {
	server, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not on PATH (apt-get install redis-server)")
	}
	s := &Sentinel{Name: name}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.Master = &Node{Port: port, path: server, dir: filepath.Join(dir, "master")}
	if err := os.MkdirAll(s.Master.dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.Master.startWith("--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--dir", s.Master.dir, "--save", "", "--appendonly", "no", "--logfile", "redis.log"); err != nil {
		return nil, err
	}
	if port, err = freePort(); err != nil {
		s.Stop()
		return nil, err
	}
	s.SentinelAt = &Node{Port: port, path: server, dir: filepath.Join(dir, "sentinel")}
	if err := os.MkdirAll(s.SentinelAt.dir, 0o755); err != nil {
		s.Stop()
		return nil, err
	}
	conf := filepath.Join(s.SentinelAt.dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nlogfile sentinel.log\nsentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 2000\n",
		port, s.SentinelAt.dir, name, s.Master.Port, name)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.SentinelAt.startWith(conf, "--sentinel"); err != nil {
		s.Stop()
		return nil, err
	}
	err = wait.Poll(30*time.Second, "the Sentinel to name master "+name, func() (bool, string, error) {
		addr, err := s.SentinelAt.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
		return err == nil && addr == fmt.Sprintf("127.0.0.1\n%d\n", s.Master.Port), fmt.Sprintf("%q %v", addr, err), nil
	})
	if err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop kills the master and the Sentinel.
func (s *Sentinel) Stop() {
	for _, n := range []*Node{s.Master, s.SentinelAt} {
		if n != nil {
			n.Kill()
		}
	}
}

// startWith starts redis-server with args and waits for PING. The
// server dies with the test binary, whatever ends it.
func (n *Node) startWith(args ...string) error {
	cmd := exec.Command(n.path, args...)
	cmd.Dir = n.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server on port %d: %w", n.Port, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	return wait.Poll(30*time.Second, "redis-server to answer PING on "+n.Addr(), func() (bool, string, error) {
		if !n.Running() {
			log, _ := os.ReadFile(filepath.Join(n.dir, "redis.log"))
			return false, "", fmt.Errorf("redis-server on port %d exited:\n%s", n.Port, lastLines(string(log), 10))
		}
		_, err := n.command("PING")
		return err == nil, fmt.Sprint(err), nil
	})
}
