package partition_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestNetnsPartition cuts the network in the kernel, where TestNetworkPartition cuts it in a
// fault-injecting layer: three vela processes, each in a network namespace of its own, are
// joined by a bridge; taking the link of the third down separates it from the other two (and
// from this test's clients). Clients of the two others keep getting answers or a clear error
// within 2 s; once the link is back, the three rings converge and every member serves every key.
// It needs root and iproute2 (`ip`); elsewhere it skips.
func TestNetnsPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes in network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 (ip) is not installed")
	}
	bin := velaBinary(t)
	net := newNetns(t, 3)
	if err := net.setUp(); err != nil {
		t.Skipf("cannot build the namespaces here: %v", err)
	}
	procs := make([]*proc, 3)
	for i := range procs {
		var seeds []string
		if i > 0 {
			seeds = []string{net.ip(0) + ":7946"}
		}
		procs[i] = startNetnsProc(t, bin, net.ns(i), net.ip(i), "ns-node-"+strconv.Itoa(i+1), seeds...)
	}
	if err := waitRingErr(15*time.Second, 3, procs...); err != nil {
		t.Skipf("the namespaces cannot reach each other through the bridge here (%v)", err)
	}
	ctx := context.Background()
	for i := range 3000 {
		if err := procs[0].c.Set(ctx, "key:"+strconv.Itoa(i), "val:"+strconv.Itoa(i), 0).Err(); err != nil {
			t.Fatalf("SET before the partition: %v", err)
		}
	}

	net.cut(2)
	// Until the two have declared the third dead, every command through them answers or fails
	// with a clear error within the forward timeout (1 s) plus slack.
	answers, clearErrors := duringPartition(t, []*redis.Client{procs[0].c, procs[1].c}, func(ci int) bool {
		_, members, err := procs[ci].ring()
		return err == nil && members == 2
	})
	if t.Failed() {
		return
	}
	if err := waitRingErr(15*time.Second, 2, procs[:2]...); err != nil {
		t.Fatalf("the two members did not drop the third: %v", err)
	}
	t.Logf("during the partition: %d answers, %d clear errors", answers, clearErrors)
	for i := range 100 { // the majority serves on its own (keys the third held are gone)
		if err := procs[1].c.Get(ctx, "key:"+strconv.Itoa(i)).Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("GET while partitioned and settled: %v", err)
		}
	}

	net.heal(2)
	if err := waitRingErr(30*time.Second, 3, procs...); err != nil {
		t.Fatalf("the rings did not converge after the heal: %v", err)
	}
	// A connection to the third member dialled just before the heal may still be timing out
	// (its SYN was lost), and a failed dial makes the peer fail fast for 200 ms: forwards to it
	// resume within the dial timeout (1 s) and that, after which every member serves every key.
	healed := time.Now()
	for {
		err := crossCheck(ctx, procs, "healed:")
		if err == nil {
			break
		}
		if time.Since(healed) > 3*time.Second {
			t.Fatalf("after the heal: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("every member served every key %v after the rings converged", time.Since(healed).Round(time.Millisecond))
	if err := crossCheck(ctx, procs, "again:"); err != nil {
		t.Fatalf("after the heal: %v", err)
	}
}

// crossCheck sets a key through each member and reads it through every member.
func crossCheck(ctx context.Context, procs []*proc, prefix string) error {
	for i, p := range procs {
		k := prefix + strconv.Itoa(i)
		if err := p.c.Set(ctx, k, "yes", 0).Err(); err != nil {
			return fmt.Errorf("SET %s through %s: %w", k, p.name, err)
		}
		for _, other := range procs {
			if v, err := other.c.Get(ctx, k).Result(); err != nil || v != "yes" {
				return fmt.Errorf("GET %s through %s = %q, %v", k, other.name, v, err)
			}
		}
	}
	return nil
}

// netns is a bridge in this namespace with n namespaces attached, each by a veth pair, on a
// private /24 that this namespace reaches through the bridge's own address.
type netns struct {
	t      *testing.T
	n      int
	prefix string // names of the bridge, namespaces and links
	subnet string // "10.X.Y."
}

func newNetns(t *testing.T, n int) *netns {
	pid := os.Getpid()
	return &netns{t: t, n: n, prefix: fmt.Sprintf("vt%d", pid%100000),
		subnet: fmt.Sprintf("10.%d.%d.", 200+pid%50, pid/50%250)}
}

func (x *netns) ns(i int) string   { return fmt.Sprintf("%sn%d", x.prefix, i) }
func (x *netns) ip(i int) string   { return x.subnet + strconv.Itoa(i+1) }
func (x *netns) host(i int) string { return fmt.Sprintf("%sh%d", x.prefix, i) } // root side of veth i

// run runs ip with args.
func (x *netns) run(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// setUp builds the namespaces; the test's cleanup removes them (and the links with them).
func (x *netns) setUp() error {
	br := x.prefix + "br"
	x.t.Cleanup(func() {
		for i := range x.n {
			_ = exec.Command("ip", "link", "del", x.host(i)).Run() // and its peer in the namespace
			_ = exec.Command("ip", "netns", "del", x.ns(i)).Run()
		}
		_ = exec.Command("ip", "link", "del", br).Run()
	})
	steps := [][]string{
		{"link", "add", br, "type", "bridge"},
		{"addr", "add", x.subnet + "254/24", "dev", br},
		{"link", "set", br, "up"},
	}
	for i := range x.n {
		guest := fmt.Sprintf("%sg%d", x.prefix, i)
		steps = append(steps,
			[]string{"netns", "add", x.ns(i)},
			[]string{"link", "add", x.host(i), "type", "veth", "peer", "name", guest},
			[]string{"link", "set", x.host(i), "master", br},
			[]string{"link", "set", x.host(i), "up"},
			[]string{"link", "set", guest, "netns", x.ns(i)},
			[]string{"-n", x.ns(i), "addr", "add", x.ip(i) + "/24", "dev", guest},
			[]string{"-n", x.ns(i), "link", "set", guest, "up"},
			[]string{"-n", x.ns(i), "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := x.run(s...); err != nil {
			return err
		}
	}
	return nil
}

// cut takes namespace i's link down: nothing reaches it or leaves it.
func (x *netns) cut(i int) {
	if err := x.run("link", "set", x.host(i), "down"); err != nil {
		x.t.Fatal(err)
	}
}

// heal brings namespace i's link back.
func (x *netns) heal(i int) {
	if err := x.run("link", "set", x.host(i), "up"); err != nil {
		x.t.Fatal(err)
	}
}

// startNetnsProc runs a member in namespace ns, listening on ip (RESP 6379, gossip 7946).
func startNetnsProc(t *testing.T, bin, ns, ip, name string, seeds ...string) *proc {
	t.Helper()
	p := &proc{name: name, addr: ip + ":6379", gossip: ip + ":7946"}
	args := []string{"netns", "exec", ns, bin, "-listen", p.addr, "-metrics_listen=", "-topology.type", "partitioned",
		"-cluster.node_name", name, "-cluster.gossip_listen", p.gossip, "-cluster.gossip_profile", "local",
		"-cluster.secret", "netns-secret", "-requirepass", "netns-pass", "-log_level", "debug"}
	if len(seeds) > 0 {
		args = append(args, "-cluster.join", strings.Join(seeds, ","))
	}
	return p.launch(t, exec.Command("ip", args...), "netns-pass") // ip netns exec execs the binary: same process
}

// waitRingErr polls until every proc's ring has the same checksum and n members.
func waitRingErr(timeout time.Duration, n int64, procs ...*proc) error {
	deadline := time.Now().Add(timeout)
	for {
		sums := map[string]bool{}
		var last error
		for _, p := range procs {
			sum, members, err := p.ring()
			if err == nil && members != n {
				err = fmt.Errorf("%s has %d members", p.name, members)
			}
			if err != nil {
				last = err
				break
			}
			sums[sum] = true
		}
		if last == nil && len(sums) == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			if last == nil {
				last = errors.New("checksums differ")
			}
			return last
		}
		time.Sleep(25 * time.Millisecond)
	}
}
