package testnode

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/server"
)

// CheckForwardedWaitersLeave checks FETCHLOCK forwarded by asked to owner, the member owning
// key. A client of asked takes key's lease; more clients of asked wait for it, and all but one
// close. Their waits must end at once, as for waiters on the owner itself (neither member
// keeps their connections until their TIMEOUT), and their going must not end the holder's
// lease, which the owner ties to no peer connection: the holder's fill succeeds and wakes the
// remaining waiter with HIT.
func CheckForwardedWaitersLeave(t testing.TB, asked, owner *server.Server, key string) {
	t.Helper()
	holder := respclient.Dial(t, asked.Addr())
	defer holder.Close()
	v := holder.Do("FETCHLOCK", key, "LEASE", "30000").Value
	if len(v.Elems) != 2 || v.Elems[0].Str != "LOCKED" {
		t.Fatalf("FETCHLOCK %s = %v, want LOCKED", key, v)
	}
	token := v.Elems[1].Str
	onAsked, onOwner := respclient.Dial(t, asked.Addr()), respclient.Dial(t, owner.Addr())
	defer onAsked.Close()
	defer onOwner.Close()
	waiting := func(c *respclient.Conn) int {
		return strings.Count(c.Do("CLIENT", "LIST").Value.Str, "cmd=fetchlock")
	}
	const leaving = 5
	var ncs []net.Conn
	for range leaving + 1 { // the last one stays
		nc, err := net.Dial("tcp", asked.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		ncs = append(ncs, nc)
		fmt.Fprintf(nc, "*4\r\n$9\r\nFETCHLOCK\r\n$%d\r\n%s\r\n$7\r\nTIMEOUT\r\n$5\r\n20000\r\n", len(key), key)
	}
	until := func(what string, cond func(a, o int) bool) {
		deadline := time.Now().Add(5 * time.Second)
		for a, o := waiting(onAsked), waiting(onOwner); !cond(a, o); a, o = waiting(onAsked), waiting(onOwner) {
			if time.Now().After(deadline) {
				t.Fatalf("waited 5 s for %s: %d waiting on the member asked, %d on the owner", what, a, o)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The holder's connection last ran FETCHLOCK too, and so did its peer connection on the
	// owner (unless a waiter's FETCHLOCK reused it).
	until("the waiters to wait on both members", func(a, o int) bool { return a == leaving+2 && o >= leaving+1 })
	for _, nc := range ncs[:leaving] {
		_ = nc.Close()
	}
	until("the waiters that left to go from both members", func(a, o int) bool { return a == 2 && o <= 2 })
	holder.Do("FETCHFILL", key, token, "filled").OK()
	stayer := ncs[leaving]
	_ = stayer.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _, err := respclient.ReadValue(bufio.NewReader(stayer))
	if err != nil || len(got.Elems) != 2 || got.Elems[0].Str != "HIT" || got.Elems[1].Str != "filled" {
		t.Fatalf("the waiter that stayed got %v, %v; want HIT filled", got, err)
	}
}
