package e2e_test

import (
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// TestClientUnblock: CLIENT UNBLOCK ends a FETCHLOCK's wait for a lease another client holds,
// on one node and through a cluster member that forwarded the FETCHLOCK to the key's owner:
// TIMEOUT (the default) makes it answer as its own timeout would, ERROR with Redis's UNBLOCKED
// error; the reply is 1, and 0 for a client that is not waiting. The argument errors are
// Redis's.
func TestClientUnblock(t *testing.T) {
	local := testnode.StartDefault(t)
	sameReplies(t, respclient.Dial(t, redistest.Start(t).Addr), respclient.Dial(t, local.Addr()), [][]any{
		{"CLIENT", "UNBLOCK"}, {"CLIENT", "UNBLOCK", "x"}, {"CLIENT", "UNBLOCK", "1", "FOO"},
		{"CLIENT", "UNBLOCK", "99999"}, {"CLIENT", "UNBLOCK", "99999", "error"}, {"CLIENT", "UNBLOCK", "1", "2", "3"},
	})
	t.Run("local", func(t *testing.T) { testUnblock(t, local, local) })
	t.Run("forwarded", func(t *testing.T) {
		nodes := testnode.StartCluster(t, 3, nil)
		testnode.WaitConverged(t, 10*time.Second, nodes...)
		owner := nodes[0].Cluster().Owner([]byte("k"))
		var other *server.Server
		for _, n := range nodes {
			if n.Cluster().Name() != owner {
				other = n
			}
		}
		testUnblock(t, other, other)
	})
}

// testUnblock holds a lease on "k" through holder, makes a client of waiter wait for it, and
// unblocks that client both ways.
func testUnblock(t *testing.T, holder, waiter *server.Server) {
	h := respclient.Dial(t, holder.Addr())
	if r := h.Do("FETCHLOCK", "k", "LEASE", "60000").Value; len(r.Elems) != 2 || r.Elems[0].Text() != "LOCKED" {
		t.Fatalf("FETCHLOCK by the holder: %v", r)
	}
	w := respclient.Dial(t, waiter.Addr())
	w.SetTimeout(20 * time.Second)
	id := w.Do("CLIENT", "ID").Value.Int
	admin := respclient.Dial(t, waiter.Addr())
	if n := admin.Do("CLIENT", "UNBLOCK", id).Value.Int; n != 0 {
		t.Fatalf("CLIENT UNBLOCK of a client not waiting = %d", n)
	}
	for _, reason := range []string{"TIMEOUT", "ERROR"} {
		w.Send("FETCHLOCK", "k", "TIMEOUT", "15000")
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for admin.Do("CLIENT", "UNBLOCK", id, reason).Value.Int != 1 { // until its wait has begun
			if time.Now().After(deadline) {
				t.Fatalf("%s: the FETCHLOCK never waited", reason)
			}
			time.Sleep(10 * time.Millisecond)
		}
		start := time.Now()
		v, _, err := w.Receive()
		if err != nil {
			t.Fatal(err)
		}
		timedOut := v.Type == '*' && len(v.Elems) == 2 && v.Elems[0].Text() == "TIMEOUT" && v.Elems[1].IsNull()
		unblocked := v.IsError() && v.Text() == "UNBLOCKED client unblocked via CLIENT UNBLOCK"
		if (reason == "TIMEOUT" && !timedOut) || (reason == "ERROR" && !unblocked) {
			t.Errorf("%s: the waiter got %v", reason, v)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: the waiter answered %v after the unblock", reason, d)
		}
	}
}
