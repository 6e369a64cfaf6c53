package faults_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is a process a test started, with its stdout and stderr captured
// to files so that a failure can show their tails.
type proc struct {
	name             string
	cmd              *exec.Cmd
	outPath, errPath string
	stdin            io.WriteCloser // nil unless asked for
	group            bool           // the process leads its own process group
	done             chan struct{}  // closed when it has exited
	quit             bool           // sent SIGQUIT for a goroutine dump
}

// launch starts path with args in workDir, its output going to
// logDir/name.out and logDir/name.err. env replaces the environment. With
// withStdin the caller gets a pipe to its standard input; without, it reads
// /dev/null. With group the process leads a new process group, which
// stop kills as a whole (for servers that spawn helpers).
func launch(name, logDir, workDir string, env []string, withStdin, group bool, path string, args ...string) (*proc, error) {
	p := &proc{
		name:    name,
		outPath: filepath.Join(logDir, name+".out"),
		errPath: filepath.Join(logDir, name+".err"),
		group:   group,
		done:    make(chan struct{}),
	}
	out, err := os.OpenFile(p.outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	errf, err := os.OpenFile(p.errPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer errf.Close()
	fmt.Fprintf(errf, "=== %s: %s %s\n", time.Now().Format(time.RFC3339Nano), path, strings.Join(args, " "))

	p.cmd = exec.Command(path, args...)
	p.cmd.Dir = workDir
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = out, errf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: group}
	if withStdin {
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the process (to its group when it leads one).
func (p *proc) signal(sig syscall.Signal) error {
	if !p.running() {
		return nil
	}
	if p.group {
		return syscall.Kill(-p.pid(), sig)
	}
	return p.cmd.Process.Signal(sig)
}

// wait waits up to timeout for the process to exit and reports whether it
// did.
func (p *proc) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// exitCode is the exit status once the process has exited: -1 when a
// signal killed it.
func (p *proc) exitCode() int { return p.cmd.ProcessState.ExitCode() }

// stop kills the process (its group, if it leads one) and waits for it.
func (p *proc) stop() {
	if p.running() {
		_ = p.signal(syscall.SIGKILL)
	}
	<-p.done
}

// stdout returns what the process wrote to its standard output.
func (p *proc) stdout() string {
	b, _ := os.ReadFile(p.outPath)
	return string(b)
}

// tail returns the last n lines of the process's output and error logs.
func (p *proc) tail(n int) string {
	var b strings.Builder
	state := "running"
	if !p.running() {
		state = p.cmd.ProcessState.String()
	}
	fmt.Fprintf(&b, "--- %s (pid %d, %s)\n", p.name, p.pid(), state)
	for _, path := range []string{p.outPath, p.errPath} {
		if t := tailFile(path, n); t != "" {
			fmt.Fprintf(&b, "  [%s]\n%s", filepath.Base(path), t)
		}
	}
	return b.String()
}

// tailFile returns the last n lines of the file at path, indented.
func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b strings.Builder
	for _, l := range lines {
		if len(l) > 600 {
			l = append(l[:600:600], "..."...)
		}
		b.WriteString("    ")
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// runTimeout bounds a command run by run.
const runTimeout = 5 * time.Minute

// cleanEnv is this process's environment without the settings of the
// programs under test or of the servers, so that nothing leaks into them;
// set adds KEY=VALUE pairs.
func cleanEnv(set ...string) []string {
	drop := []string{"POSTGRES_", "REDIS_", "RABBITMQ_", "CONSUMER_", "PRODUCER_", "ENCRYPTION_KEY", "LOG_LEVEL", "MIGRATE_DB", "SSE_", "ERL_", "PG"}
	var env []string
outer:
	for _, kv := range os.Environ() {
		for _, p := range drop {
			if strings.HasPrefix(kv, p) {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return append(env, set...)
}

// run runs a short command (pg_ctl, rabbitmqctl, go build...) and returns
// its combined output. It kills the command after runTimeout.
func run(env []string, dir, path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env, cmd.Dir = env, dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%s %s: %w\n%s", filepath.Base(path), strings.Join(args, " "), err, out)
		}
	}
	return string(out), err
}
