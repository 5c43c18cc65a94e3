package partition_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tests in this file run the real vela binary in subprocesses, so that a member can die of
// SIGKILL.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func velaBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "vela-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "vela")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is one vela process.
type proc struct {
	name, addr, gossip string
	cmd                *exec.Cmd
	log                *bytes.Buffer
	done               chan struct{}
	c                  *redis.Client
}

func startProc(t *testing.T, name string, replicas int, seeds ...string) *proc {
	t.Helper()
	p := &proc{name: name, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), gossip: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	args := []string{"-listen", p.addr, "-metrics_listen=", "-topology.type", "partitioned",
		"-cluster.node_name", name, "-cluster.gossip_listen", p.gossip, "-cluster.gossip_profile", "local",
		"-cluster.secret", "proc-secret", "-cluster.replicas", strconv.Itoa(replicas), "-log_level", "debug"}
	if len(seeds) > 0 {
		args = append(args, "-cluster.join", strings.Join(seeds, ","))
	}
	return p.launch(t, exec.Command(velaBinary(t), args...), "")
}

// launch starts cmd as p's process, kills it when the test ends (printing its log if the test
// failed), connects p's client (with password, if any) and waits until the process answers.
func (p *proc) launch(t *testing.T, cmd *exec.Cmd, password string) *proc {
	t.Helper()
	p.cmd, p.log, p.done = cmd, &bytes.Buffer{}, make(chan struct{})
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", p.name, lastLines(p.log.String(), 40))
		}
	})
	p.c = redis.NewClient(&redis.Options{Addr: p.addr, Password: password, Protocol: 3, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 3 * time.Second})
	t.Cleanup(func() { _ = p.c.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for p.c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start:\n%s", p.name, p.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

func lastLines(s string, n int) string {
	if i := strings.Index(s, "panic: "); i >= 0 { // a crash: its first lines say why
		s = s[i:]
		return strings.Join(strings.Split(s, "\n")[:min(n, strings.Count(s, "\n"))], "\n")
	}
	if i := strings.Index(s, "fatal error: "); i >= 0 {
		s = s[i:]
		return strings.Join(strings.Split(s, "\n")[:min(n, strings.Count(s, "\n"))], "\n")
	}
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill() // SIGKILL
	<-p.done
}

// ring returns a member's ring checksum and member count (VELA RING).
func (p *proc) ring() (string, int64, error) {
	r, err := p.c.Do(context.Background(), "VELA", "RING").Result()
	if err != nil {
		return "", 0, err
	}
	m, ok := r.(map[any]any)
	if !ok {
		return "", 0, errors.New("VELA RING is not a map")
	}
	members, _ := m["members"].(map[any]any)
	return m["checksum"].(string), int64(len(members)), nil
}

// localKeys is the member's own key count (INFO keyspace).
func (p *proc) localKeys(t *testing.T) int64 {
	info, err := p.c.Info(context.Background(), "keyspace").Result()
	if err != nil {
		t.Fatalf("INFO: %v", err)
	}
	i := strings.Index(info, "db0:keys=")
	if i < 0 {
		return 0
	}
	rest := info[i+len("db0:keys="):]
	n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
	return n
}

// waitRing polls until every proc's ring has the same checksum and n members.
func waitRing(t *testing.T, n int64, procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		sums := map[string]bool{}
		ok := true
		for _, p := range procs {
			sum, members, err := p.ring()
			if err != nil || members != n {
				ok = false
				break
			}
			sums[sum] = true
		}
		if ok && len(sums) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rings did not converge on %d members", n)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func startProcs(t *testing.T, n, replicas int) []*proc {
	first := startProc(t, "p1", replicas)
	procs := []*proc{first}
	for i := 2; i <= n; i++ {
		procs = append(procs, startProc(t, "p"+strconv.Itoa(i), replicas, first.gossip))
	}
	waitRing(t, int64(n), procs...)
	return procs
}

func TestSIGKILLWithTwoReplicasLosesNothing(t *testing.T) {
	procs := startProcs(t, 3, 2)
	writeKeys(t, procs[0].c, numKeys)
	var copies int64
	for _, p := range procs {
		copies += p.localKeys(t)
	}
	if copies != 2*numKeys {
		t.Fatalf("%d copies of %d keys, want 2 each", copies, numKeys)
	}
	procs[1].kill()
	survivors := []*proc{procs[0], procs[2]}
	// At once, before the survivors notice: reads of the dead member's keys fall back to the
	// other holder.
	for _, p := range survivors {
		checkKeys(t, p.c, numKeys)
		for i := 0; i < 200; i++ {
			if v, err := p.c.Get(context.Background(), "key:"+strconv.Itoa(i)).Result(); err != nil || v != "val:"+strconv.Itoa(i) {
				t.Fatalf("GET key:%d through %s right after the kill = %q, %v", i, p.name, v, err)
			}
		}
	}
	waitRing(t, 2, survivors...)
	for _, p := range survivors {
		checkKeys(t, p.c, numKeys)
	}
	// The survivors restore the second copy of every key the dead member held.
	deadline := time.Now().Add(15 * time.Second)
	for {
		copies = 0
		for _, p := range survivors {
			copies += p.localKeys(t)
		}
		if copies == 2*numKeys {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d copies of %d keys after the failure, want 2 each", copies, numKeys)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSIGKILLWithOneReplicaFailsFast(t *testing.T) {
	procs := startProcs(t, 3, 1)
	writeKeys(t, procs[0].c, 2000)
	procs[2].kill()
	// Until the survivors notice, commands for the dead member's keys fail with a clear error;
	// none may take 2 s. Then the keys it held are gone (one copy) but every command answers.
	ctx := context.Background()
	start := time.Now()
	errorsSeen, answers := 0, 0
	for i := 0; time.Since(start) < 4*time.Second; i++ {
		p := procs[i%2]
		t0 := time.Now()
		err := p.c.Get(ctx, "key:"+strconv.Itoa(i%2000)).Err()
		if d := time.Since(t0); d > 2*time.Second {
			t.Fatalf("GET through %s took %v", p.name, d)
		}
		switch {
		case err == nil || err == redis.Nil:
			answers++
		case strings.HasPrefix(err.Error(), "ERR cluster: "):
			errorsSeen++
		default:
			t.Fatalf("GET through %s: unexpected error %v", p.name, err)
		}
	}
	waitRing(t, 2, procs[0], procs[1])
	for i := 0; i < 200; i++ {
		if err := procs[i%2].c.Set(ctx, "after:"+strconv.Itoa(i), "x", 0).Err(); err != nil {
			t.Fatalf("SET after the ring healed: %v", err)
		}
	}
	t.Logf("%d answers, %d clear errors while the member died", answers, errorsSeen)
}
