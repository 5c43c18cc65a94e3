//go:build unix

package partition_test

import (
	"context"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReplicaReadsFallBackOnEventLoops: with replicas = 2, once the handoff windows have
// closed, reads of other members' keys run on the event loops. A member is stopped (SIGSTOP),
// not declared dead yet (LAN timings): a GET of each of its keys through another member waits
// for it one forward timeout, then asks the key's other holder from the loop (fallbackOnLoop),
// that member itself or the third one. Every key is read with its value.
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
}
