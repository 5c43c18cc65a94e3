//go:build unix

package replicate_test

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/testproc"
)

// TestStalledOwnerServesNothingStale: the owner of some keys is stopped (SIGSTOP) longer than
// the others wait for a copy, so they give its copies up; the keys are written meanwhile. Once
// it runs again it must neither answer the old values nor decide an INCR on them: it knows it
// was stopped (or is told it is behind) and reads from, and fetches state from, the others until
// it has been sent everything.
func TestStalledOwnerServesNothingStale(t *testing.T) {
	m1, _, m3 := startLANMembers(t, "p")
	ctx := context.Background()
	var keys []string
	for i := 0; len(keys) < 20; i++ {
		k := "stall:" + strconv.Itoa(i)
		if owner, err := m1.c.Do(ctx, "VELA", "OWNER", k).StringSlice(); err == nil && owner[0] == "p3" {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		must(t, m1.c.Set(ctx, k, "100", 0).Err())
	}
	must(t, m3.p.Signal(syscall.SIGSTOP))
	time.Sleep(500 * time.Millisecond)
	for _, k := range keys {
		must(t, m1.c.Set(ctx, k, "200", 0).Err()) // the first waits for p3 and gives it up
	}
	time.Sleep(2500 * time.Millisecond) // stopped for longer than a copy is waited for
	must(t, m3.p.Signal(syscall.SIGCONT))
	for _, k := range keys {
		if v, err := m3.c.Get(ctx, k).Result(); err != nil || v != "200" {
			t.Errorf("GET %s through the resumed owner = %q, %v; want 200", k, v, err)
		}
		if n, err := m1.c.Incr(ctx, k).Result(); err != nil || n != 201 {
			t.Errorf("INCR %s decided by the resumed owner = %d, %v; want 201", k, n, err)
		}
	}
}

// TestStalledMemberSparesTheOthers: while one member is stopped, the others keep receiving every
// copy: a write acknowledged through one is read at once through another.
func TestStalledMemberSparesTheOthers(t *testing.T) {
	m1, m2, m3 := startLANMembers(t, "b")
	ctx := context.Background()
	must(t, m1.c.Set(ctx, "bk", "old", 0).Err())
	must(t, m2.p.Signal(syscall.SIGSTOP))
	defer func() { _ = m2.p.Signal(syscall.SIGCONT) }()
	for i := 1; i <= 5; i++ {
		v := "v" + strconv.Itoa(i)
		must(t, m1.c.Set(ctx, "bk", v, 0).Err())
		if got, err := m3.c.Get(ctx, "bk").Result(); err != nil || got != v {
			t.Fatalf("after SET %s through b1, b3 reads %q, %v", v, got, err)
		}
	}
}

// startLANMembers starts three member processes named prefix1…prefix3 and waits until they are
// ready. The second and third use memberlist's LAN timings, so that a member stopped for a
// moment is not declared dead before it runs again.
func startLANMembers(t *testing.T, prefix string) (m1, m2, m3 *member) {
	t.Helper()
	bin := testproc.Build(t)
	m1 = startMember(t, bin, prefix+"1", "", "")
	m2 = startMember(t, bin, prefix+"2", "", m1.gossip, "-cluster.gossip_profile", "lan")
	m3 = startMember(t, bin, prefix+"3", "", m1.gossip, "-cluster.gossip_profile", "lan")
	waitReady(t, 3, m1, m2, m3)
	return m1, m2, m3
}
