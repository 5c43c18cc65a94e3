package e2e_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestClientKillLikeRedis compares CLIENT KILL's refusals and its answers when nothing matches
// with Redis's, then kills clients on a Vela node by each filter, on the event loop and with a
// goroutine per client: the victim's connection closes, the rest keep working.
func TestClientKillLikeRedis(t *testing.T) {
	want := respclient.Dial(t, redistest.Start(t).Addr)
	got := respclient.Dial(t, testnode.StartDefault(t).Addr())
	sameReplies(t, want, got, [][]any{
		{"CLIENT", "KILL"}, {"CLIENT", "KILL", "1.2.3.4:5"}, {"CLIENT", "KILL", "ID", "abc"},
		{"CLIENT", "KILL", "ID", "0"}, {"CLIENT", "KILL", "id", "-1"}, {"CLIENT", "KILL", "ID", "999999"},
		{"CLIENT", "KILL", "TYPE", "foo"}, {"CLIENT", "KILL", "TYPE", "pubsub"},
		{"CLIENT", "KILL", "type", "master", "skipme", "no"}, {"CLIENT", "KILL", "USER", "nobody"},
		{"CLIENT", "KILL", "ADDR", "1.2.3.4:5"}, {"CLIENT", "KILL", "LADDR", "1.2.3.4:5"},
		{"CLIENT", "KILL", "SKIPME", "maybe"}, {"CLIENT", "KILL", "ID"}, {"CLIENT", "KILL", "ID", "5", "extra"},
		{"CLIENT", "KILL", "MAXAGE", "5"}, {"CLIENT", "KILL", "ADDR", "1.2.3.4:5", "ID", "3", "TYPE", "normal"},
		{"CLIENT", "KILL", "USER", "default", "ADDR", "1.2.3.4:5"},
	})

	for _, loops := range []int{1, 0} {
		t.Run(fmt.Sprintf("event_loops=%d", loops), func(t *testing.T) {
			cfg := testnode.Config()
			cfg.EventLoops = loops
			addr := testnode.Start(t, cfg).Addr()
			dial := func() (*respclient.Conn, int64) {
				c := respclient.Dial(t, addr)
				c.SetTimeout(3 * time.Second)
				return c, c.Do("CLIENT", "ID").Value.Int
			}
			admin, adminID := dial()
			byID, id := dial()
			admin.Do("CLIENT", "KILL", "ID", strconv.FormatInt(id, 10)).Int(1)
			byID.ExpectClosed(0)

			byAddr, _ := dial()
			admin.Do("CLIENT", "KILL", "ADDR", byAddr.NetConn().LocalAddr().String()).Int(1)
			byAddr.ExpectClosed(0)

			oldForm, _ := dial()
			admin.Do("CLIENT", "KILL", oldForm.NetConn().LocalAddr().String()).OK()
			oldForm.ExpectClosed(0)

			// A client waiting in FETCHLOCK for another's lease is killed while it waits.
			holder, _ := dial()
			if v := holder.Do("FETCHLOCK", "k").Value; len(v.Elems) != 2 || v.Elems[0].Str != "LOCKED" {
				t.Fatalf("FETCHLOCK k: %v", v)
			}
			waiter, waiterID := dial()
			waiter.Send("FETCHLOCK", "k", "TIMEOUT", "20000")
			if err := waiter.Flush(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			admin.Do("CLIENT", "KILL", "ID", strconv.FormatInt(waiterID, 10)).Int(1)
			start := time.Now()
			waiter.ExpectClosed(0)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("the waiting client closed after %v", d)
			}

			// Every other client, by the server's address; the caller is skipped by default.
			others := []*respclient.Conn{holder}
			for range 3 {
				c, _ := dial()
				others = append(others, c)
			}
			admin.Do("CLIENT", "KILL", "LADDR", addr, "USER", "default").Int(int64(len(others)))
			for _, c := range others {
				c.ExpectClosed(0)
			}
			admin.Do("PING").Status("PONG")

			// Itself: the reply, then the connection closes; a command pipelined after it is
			// not run.
			admin.Send("CLIENT", "KILL", "ID", strconv.FormatInt(adminID, 10), "SKIPME", "no")
			admin.Send("SET", "after-kill", "1")
			if err := admin.Flush(); err != nil {
				t.Fatal(err)
			}
			if v, _, err := admin.Receive(); err != nil || v.Type != ':' || v.Int != 1 {
				t.Fatalf("CLIENT KILL of itself: %v, %v", v, err)
			}
			admin.ExpectClosed(0)
			check, _ := dial()
			check.Do("EXISTS", "after-kill").Int(0)
		})
	}
}

// TestClientKillSparesPeers kills every client of one member of a partitioned cluster: its
// connections to the other members are Vela's own and stay, so keys the others own still
// answer through it.
func TestClientKillSparesPeers(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	c := respclient.Dial(t, nodes[0].Addr())
	for _, n := range nodes[1:] { // their forwards to node 1 open its peer connections
		other := respclient.Dial(t, n.Addr())
		for i := range 50 {
			other.Do("SET", "peer:"+strconv.Itoa(i), "v").OK()
		}
	}
	ids := regexp.MustCompile(`(?m)^id=(\d+) `)
	before := ids.FindAllString(c.Do("CLIENT", "LIST").Value.Str, -1)
	if len(before) < 3 {
		t.Fatalf("CLIENT LIST shows %d connections; want the caller and the peers'", len(before))
	}
	c.Do("CLIENT", "KILL", "TYPE", "normal").Int(0) // nobody but the caller and peers
	after := ids.FindAllString(c.Do("CLIENT", "LIST").Value.Str, -1)
	slices.Sort(before)
	slices.Sort(after)
	if !slices.Equal(before, after) {
		t.Errorf("connections before CLIENT KILL %v, after %v", before, after)
	}
	for i := range 50 {
		c.Do("GET", "peer:"+strconv.Itoa(i)).Bulk("v")
	}
	for _, n := range nodes[1:] {
		respclient.Dial(t, n.Addr()).Do("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
	}
	for i := range 50 {
		c.Do("GET", "peer:"+strconv.Itoa(i)).Bulk("v")
	}
}
