package testnode

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/server"
)

// CheckForwardedWaitersLeave holds key's fetch lease through owner, the member that owns key,
// makes clients of asked, another member, wait in FETCHLOCK for it, and closes them. Their
// waits must end at once, as for waiters on the owner itself: neither member may keep their
// connections (asked's clients, owner's peer connections) until their TIMEOUT.
func CheckForwardedWaitersLeave(t testing.TB, asked, owner *server.Server, key string) {
	t.Helper()
	holder := respclient.Dial(t, owner.Addr())
	defer holder.Close()
	if v := holder.Do("FETCHLOCK", key, "LEASE", "30000").Value; len(v.Elems) == 0 || v.Elems[0].Str != "LOCKED" {
		t.Fatalf("FETCHLOCK %s on its owner = %v", key, v)
	}
	lister := respclient.Dial(t, asked.Addr())
	defer lister.Close()
	// waiting counts the connections waiting in FETCHLOCK on each member.
	waiting := func() (onAsked, onOwner int) {
		count := func(c *respclient.Conn) int {
			return strings.Count(c.Do("CLIENT", "LIST").Value.Str, "cmd=fetchlock")
		}
		return count(lister), count(holder)
	}
	const waiters = 5
	var ncs []net.Conn
	for range waiters {
		nc, err := net.Dial("tcp", asked.Addr())
		if err != nil {
			t.Fatal(err)
		}
		ncs = append(ncs, nc)
		fmt.Fprintf(nc, "*4\r\n$9\r\nFETCHLOCK\r\n$%d\r\n%s\r\n$7\r\nTIMEOUT\r\n$5\r\n20000\r\n", len(key), key)
	}
	until := func(what string, cond func(onAsked, onOwner int) bool) {
		deadline := time.Now().Add(5 * time.Second)
		for a, o := waiting(); !cond(a, o); a, o = waiting() {
			if time.Now().After(deadline) {
				t.Fatalf("waited 5 s for %s: %d waiting on the member asked, %d on the owner", what, a, o)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	until("the waiters to wait on both members", func(a, o int) bool { return a == waiters && o >= waiters })
	for _, nc := range ncs {
		_ = nc.Close()
	}
	// The holder's own connection last ran CLIENT LIST, so it does not count.
	until("the waiters to go from both members", func(a, o int) bool { return a == 0 && o == 0 })
}
