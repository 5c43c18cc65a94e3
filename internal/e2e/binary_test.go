package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testproc"
)

// velaBinary builds the vela command for a test (the Go build cache makes the second build
// quick) and returns its path.
func velaBinary(t *testing.T) string { return testproc.Build(t) }

// TestGracefulShutdown starts the binary, runs pipelined traffic from several clients, sends
// SIGTERM, and requires exit code 0 with every reply a client received complete: in-flight
// commands finish, nothing is cut in the middle.
func TestGracefulShutdown(t *testing.T) {
	bin := velaBinary(t)
	addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-listen", addr, "-metrics_listen", "", "-log_level", "info")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := redistest.WaitReady(addr, 10*time.Second); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("vela did not start: %v\n%s", err, stderr.Bytes())
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	replies := 0
	var failures []string
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := respclient.DialErr(addr)
			if err != nil {
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
				return
			}
			defer c.Close()
			key := "k" + strconv.Itoa(i)
			for {
				for j := 0; j < 50; j++ {
					c.Send("INCR", key)
				}
				if c.Flush() != nil {
					return
				}
				for j := 0; j < 50; j++ {
					v, _, err := c.Receive()
					if err != nil {
						// The connection may end between replies, never inside one.
						if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
							mu.Lock()
							failures = append(failures, err.Error())
							mu.Unlock()
						}
						return
					}
					if v.Type != ':' {
						mu.Lock()
						failures = append(failures, "unexpected reply "+v.String())
						mu.Unlock()
						return
					}
					mu.Lock()
					replies++
					mu.Unlock()
				}
			}
		}(i)
	}
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	wg.Wait()
	if err != nil {
		t.Fatalf("vela exited with %v after SIGTERM\n%s", err, stderr.Bytes())
	}
	if len(failures) > 0 {
		t.Fatalf("clients saw %v", failures)
	}
	if replies == 0 {
		t.Fatalf("no traffic was served before SIGTERM")
	}
	if !strings.Contains(stderr.String(), "vela stopped") {
		t.Fatalf("no clean stop logged:\n%s", stderr.Bytes())
	}
	t.Logf("%d replies before a clean exit", replies)
}

// TestBadConfigExits: a bad configuration stops start-up with exit code 2 and one line on
// stderr naming the key, never a panic or a stack trace.
func TestBadConfigExits(t *testing.T) {
	bin := velaBinary(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		key  string
	}{
		{"unknown key", []string{"-config", write("unknown.toml", "listen = \"127.0.0.1:0\"\nmax_cleints = 5\n")}, nil, "max_cleints"},
		{"unknown nested key", []string{"-config", write("nested.toml", "[store]\ntype = \"memory\"\ncolour = \"red\"\n")}, nil, "store.colour"},
		{"wrong type", []string{"-config", write("type.toml", "max_clients = \"many\"\n")}, nil, "max_clients"},
		{"bad duration", []string{"-config", write("dur.toml", "sweep_interval = \"soon\"\n")}, nil, "sweep_interval"},
		{"bad size", []string{"-config", write("size.toml", "proto_max_bulk_len = \"lots\"\n")}, nil, "proto_max_bulk_len"},
		{"bad value", []string{"-config", write("value.toml", "eviction_policy = \"random\"\n")}, nil, "eviction_policy"},
		{"bad flag value", []string{"-max_clients", "x"}, nil, "max_clients"},
		{"unknown flag", []string{"-max_cleints", "5"}, nil, "max_cleints"},
		{"bad TOML", []string{"-config", write("syntax.toml", "listen = \n")}, nil, "syntax.toml:1"},
		{"bad environment", nil, []string{"VELA_DEFAULT_TTL=forever"}, "default_ttl"},
		{"public without password", []string{"-listen", "0.0.0.0:0"}, nil, "requirepass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append(tc.args, "-metrics_listen", "")...)
			cmd.Env = append(os.Environ(), tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want code 2\n%s", err, stderr.Bytes())
			}
			out := strings.TrimRight(stderr.String(), "\n")
			if strings.Count(out, "\n") != 0 || !strings.Contains(out, tc.key) || strings.Contains(out, "goroutine") {
				t.Fatalf("stderr is not one line naming %q:\n%s", tc.key, stderr.Bytes())
			}
			t.Logf("%s", out)
		})
	}
}

// TestGoProcessors: the binary runs the redis store with one Go processor per event loop
// (Server.Procs), keeps Go's default on the memory store, and leaves GOMAXPROCS alone when the
// environment sets it. INFO vela reports what the process runs with.
func TestGoProcessors(t *testing.T) {
	bin := velaBinary(t)
	r := redistest.Start(t)
	url := "redis://" + r.Addr + "/0"
	gomaxprocs := func(p *testproc.Proc) string {
		c := respclient.Dial(t, p.Addr)
		defer c.Close()
		for _, line := range strings.Split(c.Do("INFO", "vela").Value.Str, "\r\n") {
			if v, ok := strings.CutPrefix(line, "gomaxprocs:"); ok {
				return v
			}
		}
		t.Fatalf("INFO vela has no gomaxprocs field")
		return ""
	}
	if got := gomaxprocs(testproc.Start(t, bin, "-store.type", "redis", "-store.redis.url", url, "-event_loops", "1")); got != "1" {
		t.Errorf("redis store with one event loop runs with GOMAXPROCS %s, want 1", got)
	}
	if got, want := gomaxprocs(testproc.Start(t, bin, "-store.type", "redis", "-store.redis.url", url, "-event_loops", "64")), strconv.Itoa(min(64, runtime.GOMAXPROCS(0))); got != want {
		t.Errorf("redis store with 64 event loops runs with GOMAXPROCS %s, want no more than Go's default, %s", got, want)
	}
	if got, want := gomaxprocs(testproc.Start(t, bin, "-event_loops", "1")), strconv.Itoa(runtime.GOMAXPROCS(0)); got != want {
		t.Errorf("memory store runs with GOMAXPROCS %s, want Go's default %s", got, want)
	}
	t.Setenv("GOMAXPROCS", "3")
	if got := gomaxprocs(testproc.Start(t, bin, "-store.type", "redis", "-store.redis.url", url, "-event_loops", "1")); got != "3" {
		t.Errorf("with GOMAXPROCS=3 in the environment the redis store runs with %s", got)
	}
}
