package membership

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).packetHandler"))
}

func TestSecretKey(t *testing.T) {
	for _, s := range []string{"", "x", "a much longer passphrase than thirty-two bytes, surely"} {
		if k := SecretKey(s); len(k) != 32 {
			t.Fatalf("SecretKey(%q) has %d bytes", s, len(k))
		}
	}
	if string(SecretKey("a")) == string(SecretKey("b")) {
		t.Fatal("different secrets give the same key")
	}
}

// TestJoinRetryAndLeave: a node whose seed is not up yet keeps trying and joins once it is;
// the events arrive in order and a graceful leave is reported as such; a wrong secret never
// joins.
func TestJoinRetryAndLeave(t *testing.T) {
	var mu sync.Mutex
	events := map[string][]Event{}
	record := func(name string) func(Event) {
		return func(ev Event) {
			mu.Lock()
			events[name] = append(events[name], ev)
			mu.Unlock()
		}
	}
	a, err := Start(Config{NodeName: "a", Bind: "127.0.0.1:0", RESP: "127.0.0.1:7001", Profile: ProfileLocal,
		Secret: "s3cret", OnChange: record("a"), RetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	b, err := Start(Config{NodeName: "b", Bind: "127.0.0.1:0", RESP: "0.0.0.0:7002", Profile: ProfileLocal, Advertise: "localhost",
		Secret: "s3cret", Join: []string{a.Self().Gossip}, OnChange: record("b"), RetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	wrong, err := Start(Config{NodeName: "w", Bind: "127.0.0.1:0", RESP: "127.0.0.1:7003", Profile: ProfileLocal,
		Secret: "other", Join: []string{a.Self().Gossip}, RetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Shutdown()
	waitFor(t, func() bool {
		return b.Joined() && len(a.Members()) == 2 && len(b.Members()) == 2
	})
	for _, m := range a.Members() {
		if m.Name == "b" && m.RESP != "127.0.0.1:7002" {
			t.Fatalf("b's RESP address seen by a = %q (0.0.0.0 should become the gossip host)", m.RESP)
		}
		if m.State != "alive" {
			t.Fatalf("member %+v", m)
		}
	}
	if wrong.Joined() {
		t.Fatal("a member with another secret joined")
	}
	b.Leave(time.Second)
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		evs := events["a"]
		return len(evs) > 0 && evs[len(evs)-1].Kind == Left && evs[len(evs)-1].Member.Name == "b"
	})
	mu.Lock()
	defer mu.Unlock()
	if last := events["a"][len(events["a"])-1]; len(last.Members) != 1 || last.Members[0].Name != "a" {
		t.Fatalf("members after b left: %+v", last.Members)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOwnAddressAmongSeeds: with one seed list for every node, its own address included, a
// node started first does not take itself for joined; it waits for the others, and they form
// one cluster.
func TestOwnAddressAmongSeeds(t *testing.T) {
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	addrA, addrB := free(), free()
	seeds := []string{addrA, addrB}
	start := func(name, bind string) *Membership {
		m, err := Start(Config{NodeName: name, Bind: bind, RESP: "127.0.0.1:7001", Profile: ProfileLocal,
			Join: seeds, RetryInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Shutdown() })
		return m
	}
	a := start("a", addrA)
	time.Sleep(300 * time.Millisecond) // several join attempts, while b is not up
	if a.Joined() {
		t.Fatal("a took a join to itself for joining the cluster")
	}
	b := start("b", addrB)
	waitFor(t, func() bool { return a.Joined() && b.Joined() && len(a.Members()) == 2 && len(b.Members()) == 2 })
}

// TestOnlyItselfAmongSeeds: a node whose seed list holds only itself is a cluster of its own
// by the time Start returns, and has reported its whole member list (a cluster topology serves
// clients only then).
func TestOnlyItselfAmongSeeds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var whole atomic.Bool
	m, err := Start(Config{NodeName: "a", Bind: addr, RESP: "127.0.0.1:7001", Profile: ProfileLocal,
		Join: []string{addr}, OnChange: func(ev Event) {
			if !ev.Joining {
				whole.Store(true)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	if !m.Joined() || !whole.Load() {
		t.Fatalf("after Start: joined %v, whole member list reported %v", m.Joined(), whole.Load())
	}
}

// TestNoChangeAfterShutdown: memberlist may still report a change after its Shutdown (a
// suspicion timer declaring a member dead, a packet handler still running); OnChange is not
// called once Membership.Shutdown has returned, and a call under way finishes before it does,
// so an owner may tear down what its callback uses right after Shutdown. The late report is
// made here the way memberlist makes it, through the event delegate, since the timing of a
// real one cannot be arranged.
func TestNoChangeAfterShutdown(t *testing.T) {
	var returned atomic.Bool
	calls := atomic.Int32{}
	a, err := Start(Config{NodeName: "a", Bind: "127.0.0.1:0", RESP: "127.0.0.1:7001", Profile: ProfileLocal,
		OnChange: func(ev Event) {
			if ev.Member.Name == "b" {
				calls.Add(1)
				time.Sleep(time.Millisecond) // keep a call under way while Shutdown runs
				if returned.Load() {
					t.Errorf("OnChange(%v %s) ran after Shutdown returned", ev.Kind, ev.Member.Name)
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, a.Joined)
	late := &memberlist.Node{Name: "b", Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Meta: []byte("127.0.0.1:7002")}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // memberlist's goroutines, reporting b joining and failing until after Shutdown
		defer wg.Done()
		for {
			(*events)(a).NotifyJoin(late)
			(*events)(a).NotifyLeave(late)
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	waitFor(t, func() bool { return calls.Load() > 10 })
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	returned.Store(true)
	before := calls.Load()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if after := calls.Load(); after != before {
		t.Fatalf("OnChange was called %d times after Shutdown returned", after-before)
	}
}
