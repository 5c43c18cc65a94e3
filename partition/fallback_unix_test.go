//go:build unix

package partition_test

import (
	"context"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestReplicaReadsFallBackOnEventLoops: with replicas = 2, once the handoff windows have
// closed, reads of other members' keys run on the event loops. A member is stopped (SIGSTOP),
// not declared dead yet (LAN timings): a GET of one of its keys through another member waits
// for it one forward timeout, then asks the key's other holder from the loop (fallbackOnLoop),
// that member itself or the third one. Every key is read with its value.
//
// The stopped member then costs no more timeouts (peer.ErrNotAnswering): every other read of
// its keys goes to their other holder at once, a write of a key it holds as a replica lands on
// the running holders without waiting for its copy, and a write of a key it owns fails at once
// with a clear error. Each of these would wait a forward timeout otherwise, which INFO's
// cluster_requests_failed_fast tells apart without timing anything.
func TestReplicaReadsFallBackOnEventLoops(t *testing.T) {
	start := func(name string, seeds ...string) *proc {
		p := &proc{name: name, addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), gossip: "127.0.0.1:" + strconv.Itoa(freePort(t))}
		args := []string{"-listen", p.addr, "-metrics_listen=", "-topology.type", "partitioned",
			"-cluster.node_name", name, "-cluster.gossip_listen", p.gossip, "-cluster.gossip_profile", "lan",
			"-cluster.replicas", "2", "-log_level", "debug"}
		if len(seeds) > 0 {
			args = append(args, "-cluster.join", strings.Join(seeds, ","))
		}
		return p.launch(t, exec.Command(velaBinary(t), args...), "")
	}
	p1 := start("f1")
	p2 := start("f2", p1.gossip)
	p3 := start("f3", p1.gossip)
	waitRing(t, 3, p1, p2, p3)
	const n = 1000
	writeKeys(t, p1.c, n)
	ctx := context.Background()
	windowClosed := func() bool {
		info, err := p1.c.Info(ctx, "vela").Result()
		return err == nil && strings.Contains(info, "cluster_handoff_window:0")
	}
	waitFor(t, 45*time.Second, "f1's handoff window to close", windowClosed)

	// Keys f2 owns: one whose other holder is f1, one whose other holder is f3.
	var keys []int
	for _, other := range []string{"f1", "f3"} {
		for i := 0; i < n; i++ {
			owners, err := p1.c.Do(ctx, "VELA", "OWNER", "key:"+strconv.Itoa(i)).StringSlice()
			if err != nil {
				t.Fatal(err)
			}
			if len(owners) == 2 && owners[0] == "f2" && owners[1] == other {
				keys = append(keys, i)
				break
			}
		}
	}
	if len(keys) != 2 {
		t.Fatalf("found keys %v owned by f2, want one held by f1 and one by f3", keys)
	}

	if err := p2.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p2.cmd.Process.Signal(syscall.SIGCONT) }()
	for _, i := range keys {
		if v, err := p1.c.Get(ctx, "key:"+strconv.Itoa(i)).Result(); err != nil || v != "val:"+strconv.Itoa(i) {
			t.Fatalf("GET key:%d through f1 while f2 is stopped = %q, %v", i, v, err)
		}
	}
	// The first GET went out from an event loop, a moment after the SIGSTOP: long before f1
	// can declare f2 dead (LAN timings) and open a window.
	if runtime.GOOS == "linux" {
		info, err := p1.c.Info(ctx, "vela").Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "cluster_loop_peer_connections:0") {
			t.Errorf("f1 forwarded no read from an event loop; INFO vela:\n%s", info)
		}
	}

	// Every key f2 holds, read and written through f1 or f3, half each (f3 has not met the
	// silence yet: its first request to f2 costs it one timeout).
	began := time.Now()
	var reads, copies, owned int
	for j, c := range []*redis.Client{p1.c, p3.c} {
		for i := j; i < n; i += 2 {
			key := "key:" + strconv.Itoa(i)
			owners, err := c.Do(ctx, "VELA", "OWNER", key).StringSlice()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(owners, "f2") {
				continue
			}
			if v, err := c.Get(ctx, key).Result(); err != nil || v != "val:"+strconv.Itoa(i) {
				t.Fatalf("GET %s through a running member while f2 is stopped = %q, %v", key, v, err)
			}
			reads++
			err = c.Set(ctx, key, "new:"+strconv.Itoa(i), 0).Err()
			switch {
			case owners[0] == "f2" && (err == nil || !strings.Contains(err.Error(), "requests fail at once")):
				t.Fatalf("SET %s (owned by the stopped f2) = %v, want the not-answering error", key, err)
			case owners[0] == "f2":
				owned++
			case err != nil:
				t.Fatalf("SET %s (owned by %s, copied to the stopped f2) = %v", key, owners[0], err)
			default:
				copies++
				if v, err := c.Get(ctx, key).Result(); err != nil || v != "new:"+strconv.Itoa(i) {
					t.Fatalf("GET %s after its SET = %q, %v", key, v, err)
				}
			}
		}
	}
	t.Logf("%d reads, %d writes copied to the stopped member, %d writes it owns: %v", reads, copies, owned, time.Since(began))
	if reads < 100 || copies == 0 || owned == 0 {
		t.Fatalf("%d reads, %d copied writes, %d owned writes: the keys do not cover the cases", reads, copies, owned)
	}
	for _, p := range []*proc{p1, p3} {
		info, err := p.c.Info(ctx, "vela").Result()
		if err != nil {
			t.Fatal(err)
		}
		fast := infoInt(t, info, "cluster_requests_failed_fast")
		if fast < int64(reads+copies+owned)/4 {
			t.Errorf("%s failed %d requests at once, of %d reads and %d writes of the stopped member's keys; INFO vela:\n%s",
				p.name, fast, reads, copies+owned, info)
		}
		if !strings.Contains(info, "cluster_peers_not_answering:1") {
			t.Errorf("%s does not count the stopped member as not answering; INFO vela:\n%s", p.name, info)
		}
	}
}

// infoInt returns the integer field name of an INFO reply, failing the test when it is absent.
func infoInt(t *testing.T, info, name string) int64 {
	t.Helper()
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("INFO %s:%s: %v", name, v, err)
			}
			return n
		}
	}
	t.Fatalf("INFO has no %s:\n%s", name, info)
	return 0
}
