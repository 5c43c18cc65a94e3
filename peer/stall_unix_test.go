//go:build unix

package peer

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
)

// TestStoppedPeerFailsFastUntilItAnswers: a real redis-server stopped with SIGSTOP (its kernel
// still accepts connections, nobody answers) costs the first request its timeout. The requests
// after it fail at once with ErrNotAnswering, on the pipelined connections and the exclusive
// ones, and in another pool sharing the Silence, until the server runs again and answers the
// pool's probe; then they go through.
func TestStoppedPeerFailsFastUntilItAnswers(t *testing.T) {
	srv := redistest.Start(t)
	silence := NewSilence()
	p := NewPool(Config{DialTimeout: 300 * time.Millisecond, Silence: silence})
	defer p.Close()
	other := NewPool(Config{DialTimeout: 300 * time.Millisecond, Silence: silence}) // a node's copies pool, say
	defer other.Close()
	if _, err := other.Do(srv.Addr, args("PING"), 0, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Do(srv.Addr, args("SET", "k", "v"), 0, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(srv.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := syscall.Kill(srv.Pid(), syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	defer resume()

	_, err := p.Do(srv.Addr, args("GET", "k"), 0, 300*time.Millisecond)
	if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrNotAnswering) {
		t.Fatalf("first GET to the stopped server: %v, want a timeout", err)
	}
	// Each of these would wait its 30 s timeout if the pool did not fail them at once.
	for i := 0; i < 10; i++ {
		if _, err := p.Do(srv.Addr, args("GET", "k"), uint64(i), 30*time.Second); !errors.Is(err, ErrNotAnswering) {
			t.Fatalf("GET %d to the stopped server: %v, want %v", i, err, ErrNotAnswering)
		}
	}
	if _, err := p.Exclusive(srv.Addr); !errors.Is(err, ErrNotAnswering) {
		t.Fatalf("Exclusive to the stopped server: %v, want %v", err, ErrNotAnswering)
	}
	// A pool sharing the Silence has not waited for the server, and does not: it fails at once.
	if _, err := other.Do(srv.Addr, args("GET", "k"), 0, 30*time.Second); !errors.Is(err, ErrNotAnswering) {
		t.Fatalf("GET through the other pool: %v, want %v", err, ErrNotAnswering)
	}
	if got := p.NotAnswering(); len(got) != 1 || got[0] != srv.Addr {
		t.Fatalf("NotAnswering = %v, want [%s]", got, srv.Addr)
	}
	if got := p.FailedFast(); got != 11 {
		t.Fatalf("FailedFast = %d, want 11", got)
	}
	time.Sleep(700 * time.Millisecond) // a probe or two time out meanwhile
	if got := p.NotAnswering(); len(got) != 1 {
		t.Fatalf("NotAnswering after probes of the stopped server = %v", got)
	}

	resume()
	waitUntil(t, func() bool { return len(p.NotAnswering()) == 0 })
	for _, pool := range []*Pool{p, other} {
		r, err := pool.Do(srv.Addr, args("GET", "k"), 0, 5*time.Second)
		if err != nil || string(r.Bytes) != "v" {
			t.Fatalf("GET after the server runs again = %+v, %v", r, err)
		}
	}
	x, err := p.Exclusive(srv.Addr)
	if err != nil {
		t.Fatalf("Exclusive after the server runs again: %v", err)
	}
	x.Release(true)
}

// TestForgottenSilentPeerStopsProbing: forgetting a peer that is not answering ends its probe
// (goleak in TestMain checks no goroutine is left), and a new entry for the address starts
// answering-until-proven-otherwise.
func TestForgottenSilentPeerStopsProbing(t *testing.T) {
	addr := silentPeer(t)
	p := NewPool(Config{DialTimeout: 200 * time.Millisecond})
	defer p.Close()
	if _, err := p.Do(addr, args("PING"), 0, 100*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("silent peer: %v", err)
	}
	if len(p.NotAnswering()) != 1 {
		t.Fatal("the silent peer is not marked")
	}
	p.Forget(addr)
	waitUntil(t, func() bool { return p.silentPeers.Load() == 0 })
	_, err := p.Do(addr, args("PING"), 0, 100*time.Millisecond)
	if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrNotAnswering) {
		t.Fatalf("first request after Forget: %v, want a timeout of its own", err)
	}
}
