package replicate_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/testproc"
)

// Tests in this file run the real vela binary in subprocesses, so that a member can die of
// SIGKILL.

// member is one vela process of a replicated cluster.
type member struct {
	name, gossip string
	flags        []string
	p            *testproc.Proc
	c            *redis.Client
}

// startMember runs a replicated member named name (joining seed's gossip address unless seed is
// "") with extra flags.
func startMember(t *testing.T, bin, name, gossip, seed string, extra ...string) *member {
	t.Helper()
	if gossip == "" {
		gossip = "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	}
	flags := []string{"-topology.type", "replicated", "-cluster.node_name", name,
		"-cluster.gossip_listen", gossip, "-cluster.gossip_profile", "local", "-cluster.secret", "proc-secret"}
	if seed != "" {
		flags = append(flags, "-cluster.join", seed)
	}
	flags = append(flags, extra...)
	m := &member{name: name, gossip: gossip, flags: flags, p: testproc.Start(t, bin, flags...)}
	// A pipeline of 1,000 SETs on the disk store waits for 1,000 commits (each write waits for
	// its own before it is copied): 1.2–1.9 s on a quiet machine, more under -race and load.
	m.c = redis.NewClient(&redis.Options{Addr: m.p.Addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 15 * time.Second})
	t.Cleanup(func() { _ = m.c.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", name, m.p.Output())
		}
	})
	return m
}

// infoField returns an INFO vela field of m ("" when it cannot be read).
func (m *member) infoField(field string) string {
	info, err := m.c.Info(context.Background(), "vela").Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	return ""
}

// waitReady polls until every member is ready with n members.
func waitReady(t *testing.T, n int, ms ...*member) {
	t.Helper()
	eventually(t, 20*time.Second, func() string {
		for _, m := range ms {
			if m.infoField("cluster_ready") != "1" || m.infoField("cluster_members") != strconv.Itoa(n) {
				return m.name + " is not ready with " + strconv.Itoa(n) + " members"
			}
		}
		return ""
	})
}

// fill writes key:0…key:n-1 through c, pipelined, with val:i.
func fill(t *testing.T, c *redis.Client, n int) {
	t.Helper()
	ctx := context.Background()
	p := c.Pipeline()
	for i := 0; i < n; i++ {
		p.Set(ctx, "key:"+strconv.Itoa(i), "val:"+strconv.Itoa(i), 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// holdsAll fails t unless c answers key:0…key:n-1 with val:i.
func holdsAll(t *testing.T, c *redis.Client, n int) {
	t.Helper()
	ctx := context.Background()
	p := c.Pipeline()
	cmds := make([]*redis.StringCmd, n)
	for i := range cmds {
		cmds[i] = p.Get(ctx, "key:"+strconv.Itoa(i))
	}
	_, _ = p.Exec(ctx)
	for i, cmd := range cmds {
		if v, err := cmd.Result(); err != nil || v != "val:"+strconv.Itoa(i) {
			t.Fatalf("key:%d through %s = %q, %v", i, c.Options().Addr, v, err)
		}
	}
}

// TestSIGKILLLosesNothing: a member dies of SIGKILL; the survivors hold every key and answer at
// once; writes meanwhile answer within two forward timeouts; the member restarts empty (memory
// store), and reports ready only once it holds everything again.
func TestSIGKILLLosesNothing(t *testing.T) {
	bin := testproc.Build(t)
	m1 := startMember(t, bin, "p1", "", "")
	m2 := startMember(t, bin, "p2", "", m1.gossip)
	m3 := startMember(t, bin, "p3", "", m1.gossip)
	waitReady(t, 3, m1, m2, m3)
	const n = 5000
	fill(t, m1.c, n)

	m2.p.Kill()
	ctx := context.Background()
	holdsAll(t, m1.c, n)
	holdsAll(t, m3.c, n)
	for i := 0; i < 40; i++ {
		c := []*redis.Client{m1.c, m3.c}[i%2]
		start := time.Now()
		err := c.Set(ctx, "after:"+strconv.Itoa(i), "x", 0).Err()
		if err == nil {
			err = c.Incr(ctx, "count:"+strconv.Itoa(i)).Err()
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("a write took %v after the kill (err %v)", d, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "ERR ") {
			t.Fatalf("unclear error after the kill: %v", err)
		}
	}
	waitReady(t, 2, m1, m3)

	again := startMember(t, bin, "p2", m2.gossip, m1.gossip)
	waitReady(t, 3, m1, again, m3)
	holdsAll(t, again.c, n)
	if got, err := again.c.Get(ctx, "after:39").Result(); err != nil || got != "x" {
		t.Fatalf("a write made while p2 was dead, on p2 after its restart = %q, %v", got, err)
	}
}

// TestDiskMemberRestartConverges: a member on the disk store dies of SIGKILL, the others change
// and delete keys meanwhile, and it restarts on its file: once ready it holds what they hold,
// its older copies overruled, the deleted keys gone, in both directions.
func TestDiskMemberRestartConverges(t *testing.T) {
	bin := testproc.Build(t)
	dir := t.TempDir()
	disk := func(name string) []string {
		return []string{"-store.type", "disk", "-store.disk.path", filepath.Join(dir, name+".db")}
	}
	m1 := startMember(t, bin, "d1", "", "", disk("d1")...)
	m2 := startMember(t, bin, "d2", "", m1.gossip, disk("d2")...)
	waitReady(t, 2, m1, m2)
	const n = 1000
	fill(t, m1.c, n)
	holdsAll(t, m2.c, n)

	m2.p.Kill()
	waitReady(t, 1, m1)
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		must(t, m1.c.Set(ctx, "key:"+strconv.Itoa(i), "new:"+strconv.Itoa(i), 0).Err())
		must(t, m1.c.Del(ctx, "key:"+strconv.Itoa(100+i)).Err())
	}
	again := startMember(t, bin, "d2", m2.gossip, m1.gossip, disk("d2")...)
	waitReady(t, 2, m1, again)
	eventually(t, 10*time.Second, func() string {
		return sameEverywhere(ctx, []*redis.Client{m1.c, again.c}, []string{"key:0", "key:99", "key:100", "key:199", "key:500"})
	})
	for _, c := range []*redis.Client{m1.c, again.c} {
		if v, err := c.Get(ctx, "key:5").Result(); err != nil || v != "new:5" {
			t.Errorf("key:5 through %s = %q, %v; want the write made while d2 was dead", c.Options().Addr, v, err)
		}
		if err := c.Get(ctx, "key:150").Err(); !errors.Is(err, redis.Nil) {
			t.Errorf("key:150 through %s: %v; want it deleted", c.Options().Addr, err)
		}
		if v, err := c.Get(ctx, "key:500").Result(); err != nil || v != "val:500" {
			t.Errorf("key:500 through %s = %q, %v", c.Options().Addr, v, err)
		}
		if nk, err := c.DBSize(ctx).Result(); err != nil || nk != n-100 {
			t.Errorf("DBSIZE through %s = %d, %v; want %d", c.Options().Addr, nk, err, n-100)
		}
	}
}

// TestRestartBeforeDeclaredDead: a member killed and restarted at once, with the same name and
// gossip address, is back before the others declare it dead, so they see no join; it asks them
// for the whole state itself and reports ready only once it holds it.
func TestRestartBeforeDeclaredDead(t *testing.T) {
	bin := testproc.Build(t)
	m1 := startMember(t, bin, "r1", "", "")
	m2 := startMember(t, bin, "r2", "", m1.gossip)
	m3 := startMember(t, bin, "r3", "", m1.gossip)
	waitReady(t, 3, m1, m2, m3)
	const n = 5000
	fill(t, m1.c, n)
	m2.p.Kill()
	again := startMember(t, bin, "r2", m2.gossip, m1.gossip)
	waitReady(t, 3, m1, again, m3)
	holdsAll(t, again.c, n)
}

// TestDiskStampsSurviveRestarts: the stamps of a disk-store member outlive its restart, so a
// member that missed writes and comes back after every other member restarted does not bring
// back its older values or a deleted key.
func TestDiskStampsSurviveRestarts(t *testing.T) {
	bin := testproc.Build(t)
	dir := t.TempDir()
	disk := func(name string) []string {
		return []string{"-store.type", "disk", "-store.disk.path", filepath.Join(dir, name+".db")}
	}
	ctx := context.Background()
	m1 := startMember(t, bin, "s1", "", "", disk("s1")...)
	m2 := startMember(t, bin, "s2", "", m1.gossip, disk("s2")...)
	m3 := startMember(t, bin, "s3", "", m1.gossip, disk("s3")...)
	waitReady(t, 3, m1, m2, m3)
	must(t, m1.c.Set(ctx, "K", "b", 0).Err())
	must(t, m1.c.Set(ctx, "K2", "present", 0).Err())
	m2.p.Kill()
	waitReady(t, 2, m1, m3)
	must(t, m1.c.Set(ctx, "K", "a", 0).Err())
	must(t, m1.c.Del(ctx, "K2").Err())

	// Every member that holds the newer state stops, so none keeps its stamps in memory.
	for _, m := range []*member{m1, m3} {
		if _, err := m.p.Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	m1 = startMember(t, bin, "s1", m1.gossip, m3.gossip, disk("s1")...)
	m3 = startMember(t, bin, "s3", m3.gossip, m1.gossip, disk("s3")...)
	waitReady(t, 2, m1, m3)
	// On a new gossip port: its old one has been free since the kill, and another process of
	// this test may hold it now.
	m2 = startMember(t, bin, "s2", "", m1.gossip, disk("s2")...)
	waitReady(t, 3, m1, m2, m3)
	for _, m := range []*member{m1, m2, m3} {
		eventually(t, 5*time.Second, func() string {
			if v, err := m.c.Get(ctx, "K").Result(); err != nil || v != "a" {
				return m.name + ": K = " + v + ", want a"
			}
			if err := m.c.Get(ctx, "K2").Err(); !errors.Is(err, redis.Nil) {
				return m.name + ": K2 is back"
			}
			return ""
		})
	}
}
