package e2e_test

import (
	"cmp"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestClientTrackingOffLikeRedis: the CLIENT subcommands of client-side caching answer as
// Redis's for a client whose tracking is off (RESP2 and RESP3), their syntax errors included;
// CLIENT NO-EVICT as Redis, its flag in CLIENT INFO.
func TestClientTrackingOffLikeRedis(t *testing.T) {
	redis := respclient.Dial(t, redistest.Start(t).Addr)
	vela := respclient.Dial(t, testnode.StartDefault(t).Addr())
	session := [][]any{
		{"CLIENT", "GETREDIR"}, {"CLIENT", "GETREDIR", "x"}, {"CLIENT", "TRACKINGINFO"},
		{"CLIENT", "TRACKINGINFO", "x"}, {"CLIENT", "CACHING", "yes"}, {"CLIENT", "CACHING", "maybe"},
		{"CLIENT", "CACHING"}, {"CLIENT", "TRACKING"}, {"CLIENT", "TRACKING", "foo"},
		{"CLIENT", "TRACKING", "off"}, {"CLIENT", "TRACKING", "OFF", "bogus"},
		{"CLIENT", "TRACKING", "off", "REDIRECT"}, {"CLIENT", "TRACKING", "off", "REDIRECT", "x"},
		{"CLIENT", "TRACKING", "off", "REDIRECT", "999999"}, {"CLIENT", "TRACKING", "off", "BCAST", "PREFIX", "a", "NOLOOP"},
		{"CLIENT", "TRACKING", "off", "optin", "optout"}, {"CLIENT", "TRACKING", "on", "bogus"},
		{"CLIENT", "NO-EVICT"}, {"CLIENT", "NO-EVICT", "maybe"}, {"CLIENT", "NO-EVICT", "on"},
	}
	sameReplies(t, redis, vela, session)
	for _, c := range []*respclient.Conn{redis, vela} {
		if info := c.Do("CLIENT", "INFO").Value.Text(); !strings.Contains(info, " flags=e ") {
			t.Errorf("CLIENT INFO after NO-EVICT ON: %s", info)
		}
	}
	redis.Do("HELLO", "3")
	vela.Do("HELLO", "3")
	sameReplies(t, redis, vela, [][]any{{"CLIENT", "NO-EVICT", "OFF"}, {"CLIENT", "TRACKINGINFO"}})
	if info := vela.Do("CLIENT", "INFO").Value.Text(); !strings.Contains(info, " flags=N ") {
		t.Errorf("CLIENT INFO after NO-EVICT OFF: %s", info)
	}
}

// trackingStep is one command of a tracking session: who sends it, and its arguments ("$B" and
// "$C" stand for the IDs of connections b and c).
type trackingStep struct {
	who  byte
	args []string
}

// runTracking plays steps against the server at addr on three connections: a tracks (RESP3), b
// writes (RESP2), c receives redirected messages (RESP3). It returns, for each step, the
// sender's reply and then what a and c had received: the messages are read up to the reply of
// a PING sent after the step, so the record does not depend on timing.
func runTracking(t *testing.T, addr string, steps []trackingStep) []string {
	conns := map[byte]*respclient.Conn{'a': respclient.Dial(t, addr), 'b': respclient.Dial(t, addr), 'c': respclient.Dial(t, addr)}
	conns['a'].Do("HELLO", "3")
	conns['c'].Do("HELLO", "3")
	conns['a'].Do("FLUSHALL")
	ids := map[string]string{"$B": conns['b'].Do("CLIENT", "ID").Value.Text(), "$C": conns['c'].Do("CLIENT", "ID").Value.Text()}
	var record []string
	inMulti := map[byte]bool{}
	for _, st := range steps {
		args := st.argsWith(ids)
		raw := string(conns[st.who].Do(args...).Raw)
		raw = helloID.ReplaceAllString(raw, "id\r\n:ID\r\n")
		if m := clientFlags.FindStringSubmatch(raw); m != nil { // CLIENT INFO: what tracking shows
			raw = "flags=" + m[1] + " redir=" + m[2]
		}
		for id, name := range map[string]string{ids["$B"]: "$B", ids["$C"]: "$C"} {
			if raw == ":"+id+"\r\n" { // GETREDIR
				raw = ":" + name + "\r\n"
			}
			raw = strings.ReplaceAll(raw, "redirect\r\n:"+id+"\r\n", "redirect\r\n:"+name+"\r\n")
			raw = strings.ReplaceAll(raw, "redir="+id, "redir="+name)
		}
		line := fmt.Sprintf("%c %v -> %q", st.who, st.args, raw)
		switch strings.ToUpper(st.args[0]) {
		case "MULTI":
			inMulti[st.who] = true
		case "EXEC", "DISCARD":
			inMulti[st.who] = false
		}
		for _, w := range []byte{'a', 'c'} {
			if inMulti[w] {
				continue // its PING would be queued
			}
			pushes := drainPushes(t, conns[w])
			line += fmt.Sprintf(" | %c got %q", w, pushes)
		}
		record = append(record, line)
	}
	return record
}

// helloID finds the connection's ID in HELLO's reply.
var helloID = regexp.MustCompile("id\r\n:\\d+\r\n")

// clientFlags finds the fields of a CLIENT INFO line that client tracking sets.
var clientFlags = regexp.MustCompile(` flags=(\S+) .* redir=(-?\d+) `)

// drainPushes sends PING on c and returns what arrived before its reply.
func drainPushes(t *testing.T, c *respclient.Conn) string {
	t.Helper()
	c.Send("PING")
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	var got string
	for {
		v, raw, err := c.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if v.Text() == "PONG" {
			return got
		}
		got += string(raw)
	}
}

// argsWith returns the step's arguments for sending, with each placeholder of ids ("$B") replaced
// by its value (a connection's ID).
func (st trackingStep) argsWith(ids map[string]string) []any {
	args := make([]any, len(st.args))
	for i, a := range st.args {
		if id, ok := ids[a]; ok {
			a = id
		}
		args[i] = a
	}
	return args
}

func steps(who byte, cmds ...[]string) []trackingStep {
	out := make([]trackingStep, len(cmds))
	for i, c := range cmds {
		out[i] = trackingStep{who, c}
	}
	return out
}

func cmd(args ...string) []string { return args }

// TestClientTrackingLikeRedis plays the same tracking sessions against Redis and Vela and
// compares every reply and every invalidation message, byte for byte: the default mode
// (reads remembered once, MGET, MSET, a client's own writes, NOLOOP, FLUSHALL), BCAST with
// prefixes, OPTIN and OPTOUT with CLIENT CACHING (inside MULTI too), REDIRECT to a RESP3
// connection and to a RESP2 one, a broken redirect, TRACKINGINFO, GETREDIR, CLIENT INFO's
// flags and every error of CLIENT TRACKING and CLIENT CACHING.
func TestClientTrackingLikeRedis(t *testing.T) {
	redisAddr := redistest.Start(t).Addr
	velaAddr := testnode.StartDefault(t).Addr()
	var session []trackingStep
	add := func(s []trackingStep) { session = append(session, s...) }
	add(steps('a', cmd("CLIENT", "TRACKING", "ON"), cmd("GET", "k1"), cmd("MGET", "k2", "k3"), cmd("STRLEN", "k4")))
	add(steps('b', cmd("SET", "k1", "v"), cmd("MSET", "k2", "x", "k3", "y"), cmd("SET", "k1", "w"), cmd("APPEND", "k4", "z")))
	add(steps('a', cmd("GET", "k1"), cmd("SET", "k1", "z"), cmd("GET", "k1"), cmd("CLIENT", "TRACKING", "ON", "NOLOOP"),
		cmd("SET", "k1", "q"), cmd("GET", "k1"), cmd("CLIENT", "TRACKINGINFO"), cmd("CLIENT", "GETREDIR")))
	add(steps('b', cmd("SET", "k1", "r"), cmd("INCR", "n")))
	add(steps('a', cmd("GET", "k1"), cmd("EXISTS", "k5", "k6"), cmd("TTL", "k7")))
	add(steps('b', cmd("DEL", "k5", "k7"), cmd("EXPIRE", "k1", "100"), cmd("FLUSHALL")))
	add(steps('a', cmd("CLIENT", "TRACKING", "OFF"), cmd("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "p:", "PREFIX", "q")))
	add(steps('b', cmd("MSET", "p:1", "a", "q2", "b", "z", "c", "p:0", "d"), cmd("DEL", "p:1"), cmd("SET", "zz", "1")))
	add(steps('a', cmd("SET", "p:2", "x"), cmd("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "p:x"),
		cmd("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "r", "PREFIX", "rr"), cmd("CLIENT", "TRACKING", "ON"),
		cmd("CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"), cmd("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "s", "NOLOOP"),
		cmd("CLIENT", "TRACKINGINFO"), cmd("CLIENT", "INFO")))
	add(steps('a', cmd("MSET", "s1", "1", "p:3", "2")))
	add(steps('b', cmd("MSET", "s1", "1", "p:3", "2")))
	add(steps('a', cmd("CLIENT", "TRACKING", "OFF"), cmd("CLIENT", "TRACKING", "ON", "OPTIN"), cmd("GET", "o1"),
		cmd("CLIENT", "CACHING", "YES"), cmd("GET", "o2"), cmd("CLIENT", "CACHING", "NO"), cmd("CLIENT", "TRACKINGINFO")))
	add(steps('b', cmd("SET", "o1", "1"), cmd("SET", "o2", "2")))
	add(steps('a', cmd("CLIENT", "CACHING", "YES"), cmd("MULTI"), cmd("GET", "o3"), cmd("GET", "o4"), cmd("EXEC"),
		cmd("CLIENT", "CACHING", "YES"), cmd("CLIENT", "GETNAME"), cmd("GET", "o5"), cmd("GET", "o6")))
	add(steps('b', cmd("MSET", "o3", "1", "o4", "2", "o5", "3", "o6", "4")))
	add(steps('a', cmd("CLIENT", "TRACKING", "ON", "OPTOUT"), cmd("CLIENT", "TRACKING", "OFF"),
		cmd("CLIENT", "TRACKING", "ON", "OPTOUT"), cmd("GET", "t1"), cmd("CLIENT", "CACHING", "NO"), cmd("GET", "t2"),
		cmd("CLIENT", "TRACKINGINFO")))
	add(steps('b', cmd("MSET", "t1", "1", "t2", "2")))
	add(steps('a', cmd("CLIENT", "TRACKING", "OFF"), cmd("CLIENT", "TRACKING", "ON", "REDIRECT", "$C"), cmd("GET", "r1"),
		cmd("CLIENT", "GETREDIR")))
	add(steps('b', cmd("SET", "r1", "x"), cmd("CLIENT", "TRACKING", "ON", "REDIRECT", "$C"), cmd("GET", "r2"), cmd("CLIENT", "INFO")))
	add(steps('a', cmd("SET", "r2", "y"), cmd("CLIENT", "TRACKING", "ON", "REDIRECT", "$B"), cmd("GET", "r3")))
	add(steps('c', cmd("SET", "r3", "z")))
	add(steps('a', cmd("CLIENT", "TRACKING", "ON", "REDIRECT", "999999"), cmd("CLIENT", "TRACKING", "ON", "REDIRECT", "abc"),
		cmd("CLIENT", "TRACKING", "ON", "REDIRECT", "$B", "REDIRECT", "$B"), cmd("CLIENT", "TRACKING", "ON", "REDIRECT"),
		cmd("CLIENT", "TRACKING", "ON", "PREFIX", "x"), cmd("CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"),
		cmd("CLIENT", "TRACKING", "maybe"), cmd("CLIENT", "TRACKING", "ON", "FOO"), cmd("CLIENT", "CACHING", "maybe"),
		cmd("CLIENT", "CACHING"), cmd("CLIENT", "TRACKING", "OFF"), cmd("CLIENT", "CACHING", "YES"),
		cmd("CLIENT", "TRACKING", "ON", "BCAST"), cmd("RESET"), cmd("CLIENT", "TRACKINGINFO"), cmd("HELLO", "3")))
	add(steps('b', cmd("SET", "after-reset", "1")))
	want, got := runTracking(t, redisAddr, session), runTracking(t, velaAddr, session)
	if n := strings.Count(strings.Join(want, "\n"), "invalidate"); n < 15 {
		t.Fatalf("the session made Redis send %d invalidations: it tests too little", n)
	}
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("step %d:\n redis: %s\n  vela: %s", i, want[i], got[i])
		}
	}
}

// expectPush reads from c, which sends nothing else meanwhile, until an invalidation of key
// arrives, failing t after wait.
func expectPush(t *testing.T, c *respclient.Conn, key string, wait time.Duration) {
	t.Helper()
	c.SetTimeout(wait)
	defer c.SetTimeout(5 * time.Second)
	v, raw, err := c.Receive()
	if err != nil {
		t.Fatalf("no invalidation of %s within %v: %v", key, wait, err)
	}
	if want := fmt.Sprintf(">2\r\n$10\r\ninvalidate\r\n*1\r\n$%d\r\n%s\r\n", len(key), key); string(raw) != want {
		t.Fatalf("pushed %q (%v), want the invalidation of %s", raw, v, key)
	}
}

// TestClientTrackingExpiry: a key a tracking client read is reported when it expires, without
// anyone reading it (the background sweep, or Redis's active expiry), on the memory and the
// disk store and against Redis; and, on the memory store, when it is evicted.
func TestClientTrackingExpiry(t *testing.T) {
	mem := testnode.Config()
	mem.SweepInterval = 50 * time.Millisecond
	disk := mem
	disk.Store.Type, disk.Store.DiskPath = "disk", filepath.Join(t.TempDir(), "vela.db")
	servers := map[string]string{"redis": redistest.Start(t).Addr, "memory": testnode.Start(t, mem).Addr(),
		"disk": testnode.Start(t, disk).Addr()}
	for name, addr := range servers {
		t.Run(name, func(t *testing.T) {
			a, b := respclient.Dial(t, addr), respclient.Dial(t, addr)
			a.Do("HELLO", "3")
			a.Do("CLIENT", "TRACKING", "ON").OK()
			b.Do("SET", "soon", "v", "PX", "150").OK()
			a.Do("GET", "soon").Bulk("v")
			expectPush(t, a, "soon", 3*time.Second)
		})
	}
	t.Run("eviction", func(t *testing.T) {
		cfg := testnode.Config()
		cfg.MaxSize, cfg.EvictionPolicy = 10, "lru"
		addr := testnode.Start(t, cfg).Addr()
		a, b := respclient.Dial(t, addr), respclient.Dial(t, addr)
		a.Do("HELLO", "3")
		a.Do("CLIENT", "TRACKING", "ON").OK()
		b.Do("SET", "old", "v").OK()
		a.Do("GET", "old").Bulk("v")
		for i := range 100 {
			b.Do("SET", fmt.Sprint("new:", i), "v").OK()
		}
		b.Do("EXISTS", "old").Int(0)
		expectPush(t, a, "old", time.Second)
	})
}

// TestClientTrackingUnderConcurrentWrites keeps a client-side cache the way a client library
// does (every GET's reply cached, every invalidation applied) while four other connections
// overwrite the same keys, on Vela, whose reads and writes run in parallel: on one node, and on
// a member of a partitioned cluster whose other member owns half the keys and takes half the
// writes (with and without a near cache). When the writers
// stop, every value still cached must be the server's: a write that lands while a read is in
// flight must not be lost between the read and its key's remembering. Pipelined reads on one
// connection, and writes on goroutines as well as on the event loop, widen the window.
func TestClientTrackingUnderConcurrentWrites(t *testing.T) {
	cfg := testnode.Config()
	cfg.EventLoops = 0 // every connection on a goroutine of its own: reads and writes in parallel
	members := testnode.StartCluster(t, 2, nil)
	testnode.WaitConverged(t, 10*time.Second, members...)
	near := testnode.StartCluster(t, 2, func(_ int, cfg *config.Config) { cfg.NearCache.Enabled = true })
	testnode.WaitConverged(t, 10*time.Second, near...)
	type setup struct{ reader, writer string }
	for name, s := range map[string]setup{
		"loops":                  {testnode.StartDefault(t).Addr(), ""},
		"goroutines":             {testnode.Start(t, cfg).Addr(), ""},
		"partitioned":            {members[0].Addr(), members[1].Addr()}, // half the keys the other member's
		"partitioned-near-cache": {near[0].Addr(), near[1].Addr()},
	} {
		addr, writeAddr := s.reader, cmp.Or(s.writer, s.reader)
		t.Run(name, func(t *testing.T) {
			const keys = 20
			key := func(i int) string { return fmt.Sprint("cc:", i) }
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := respclient.Dial(t, addr)
					if w%2 == 1 {
						c = respclient.Dial(t, writeAddr)
					}
					for n := 0; ; n++ {
						select {
						case <-stop:
							return
						default:
						}
						if _, _, err := c.Exec(respclient.Args("SET", key((n*7+w)%keys), fmt.Sprint(w, ":", n))); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			a := respclient.Dial(t, addr)
			a.Do("HELLO", "3")
			a.Do("CLIENT", "TRACKING", "ON").OK()
			cache := map[string]string{}
			// receive reads a's next reply, applying the invalidations before it.
			receive := func() respclient.Value {
				for {
					v, _, err := a.Receive()
					if err != nil {
						t.Fatal(err)
					}
					if v.Type != '>' {
						return v
					}
					if v.Elems[1].Null {
						clear(cache)
					}
					for _, k := range v.Elems[1].Elems {
						delete(cache, k.Str)
					}
				}
			}
			deadline := time.Now().Add(2 * time.Second)
			for round := 0; time.Now().Before(deadline); round++ {
				var asked []string
				for i := range 8 { // a pipeline of reads of keys not cached
					if k := key((round*3 + i*5) % keys); cache[k] == "" && !slices.Contains(asked, k) {
						a.Send("GET", k)
						asked = append(asked, k)
					}
				}
				if err := a.Flush(); err != nil {
					t.Fatal(err)
				}
				for _, k := range asked {
					cache[k] = receive().Str
				}
			}
			close(stop)
			wg.Wait()
			time.Sleep(300 * time.Millisecond) // another member's word travels on its own connection
			a.Send("PING")
			if err := a.Flush(); err != nil {
				t.Fatal(err)
			}
			receive() // every invalidation sent before PONG is applied
			check := respclient.Dial(t, addr)
			for k, v := range cache {
				if now := check.Do("GET", k).Value.Str; now != v {
					t.Errorf("%s cached as %q, but the server holds %q and sent no invalidation", k, v, now)
				}
			}
		})
	}
}

// TestClientTrackingInClusters: in the replicated topology a client tracking on one member is
// told of a write made through another (every member applies every write); in the partitioned
// topology, of a write to a key another member owns, made on the owner or forwarded to it, and
// of a write forwarded to its own member, after GET and MGET.
func TestClientTrackingInClusters(t *testing.T) {
	t.Run("replicated", func(t *testing.T) {
		nodes := testnode.StartReplicated(t, 2, nil)
		testnode.WaitReplicated(t, 10*time.Second, nodes...)
		a, b := respclient.Dial(t, nodes[0].Addr()), respclient.Dial(t, nodes[1].Addr())
		a.Do("HELLO", "3")
		a.Do("CLIENT", "TRACKING", "ON").OK()
		b.Do("SET", "shared", "1").OK()
		a.Do("GET", "shared") // the copy may not have arrived yet: either answer is fine
		b.Do("SET", "shared", "2").OK()
		expectPush(t, a, "shared", 5*time.Second)
	})
	for _, near := range []bool{false, true} {
		t.Run(fmt.Sprintf("partitioned-near-%v", near), func(t *testing.T) {
			nodes := testnode.StartCluster(t, 2, func(_ int, cfg *config.Config) { cfg.NearCache.Enabled = near })
			testnode.WaitConverged(t, 10*time.Second, nodes...)
			cl := nodes[0].Cluster()
			remote := testnode.TagOwnedBy(t, cl.Owner, nodes[1].Cluster().Name()) + "k"
			local := testnode.TagOwnedBy(t, cl.Owner, cl.Name()) + "k"
			a := respclient.Dial(t, nodes[0].Addr())
			viaOwner, viaReader := respclient.Dial(t, nodes[1].Addr()), respclient.Dial(t, nodes[0].Addr())
			a.Do("HELLO", "3")
			a.Do("CLIENT", "TRACKING", "ON").OK()
			for _, w := range []*respclient.Conn{viaOwner, viaReader} { // a write on the owner, one forwarded to it
				a.Do("GET", remote)
				w.Do("SET", remote, "v").OK()
				expectPush(t, a, remote, 5*time.Second)
			}
			a.Do("GET", local)
			viaOwner.Do("SET", local, "v").OK() // forwarded here by the other member
			expectPush(t, a, local, 5*time.Second)
			a.Do("MGET", remote, local)
			viaOwner.Do("DEL", remote).Int(1)
			expectPush(t, a, remote, 5*time.Second)

			// NOLOOP: a client's own write of another member's key is not reported back to it.
			// The owner reports its keys' changes in order, so the report of a later write by
			// someone else (marker) comes after any report of the client's own.
			noloop := respclient.Dial(t, nodes[0].Addr())
			noloop.Do("HELLO", "3")
			noloop.Do("CLIENT", "TRACKING", "ON", "NOLOOP").OK()
			marker := strings.TrimSuffix(remote, "k") + "marker" // the same hash tag: the same owner
			noloop.Do("GET", remote)
			noloop.Do("GET", marker)
			noloop.Do("SET", remote, "own").OK()
			viaOwner.Do("SET", marker, "x").OK()
			expectPush(t, noloop, marker, 5*time.Second)

			// A script that reads another member's key runs on the owner: its key is
			// registered all the same.
			a.Do("EVAL", "return redis.call('GET', KEYS[1])", "1", remote)
			viaOwner.Do("SET", remote, "from-owner").OK()
			expectPush(t, a, remote, 5*time.Second)
		})
	}
}
