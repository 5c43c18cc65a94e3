// Package testproc builds the vela binary and runs it as a real subprocess for tests that need
// what an in-process node cannot give: SIGKILL in the middle of writes, a restart on the same
// files, the exit code.
package testproc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
)

// Build compiles the vela binary into a temporary directory of t and returns its path.
func Build(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "vela")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the vela module")
	}
	return filepath.Dir(mod), nil
}

// Proc is a running vela process.
type Proc struct {
	Addr string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // Wait's result, valid after done
}

// Start runs bin on a free loopback port with the given extra flags (e.g. "-store.type", "disk")
// and waits until it answers PING. The process is killed when the test ends if still running.
func Start(t testing.TB, bin string, flags ...string) *Proc {
	t.Helper()
	for attempt := 0; ; attempt++ {
		port := redistest.FreePort(t)
		p := &Proc{Addr: "127.0.0.1:" + strconv.Itoa(port), out: &syncBuffer{}, done: make(chan struct{})}
		args := append([]string{"-listen", p.Addr, "-metrics_listen", "", "-log_level", "warn"}, flags...)
		p.cmd = exec.Command(bin, args...)
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.err = p.cmd.Wait(); close(p.done) }()
		t.Cleanup(p.Kill)
		err := redistest.WaitReady(p.Addr, 10*time.Second)
		if err == nil {
			return p
		}
		p.Kill()
		if attempt == 2 {
			t.Fatalf("vela did not start: %v\n%s", err, p.Output())
		}
	}
}

// Kill sends SIGKILL and waits for the process to die. It is safe to call more than once.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout for a clean exit; it returns the exit code.
func (p *Proc) Stop(timeout time.Duration) (int, error) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.Wait(timeout)
}

// Wait waits up to timeout for the process to exit (after SHUTDOWN, say) and returns its exit
// code; past timeout it kills the process and reports an error.
func (p *Proc) Wait(timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-ctx.Done():
		p.Kill()
		return -1, fmt.Errorf("vela did not exit within %v", timeout)
	}
}

// Signal sends sig to the process (SIGSTOP and SIGCONT to stall it, say).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Pid returns the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output returns what the process has written to stdout and stderr.
func (p *Proc) Output() string { return p.out.String() }

// syncBuffer is a bytes.Buffer safe for the process's writers and the test's readers.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
