package fetchlock_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/fetchlock"
	"github.com/vela-cache/vela/store"
)

// n connections call FETCHLOCK on one missing key: exactly one gets LOCKED, every other one
// waits, and all of them get HIT with the value once the holder fills it.
func stampede(t *testing.T, n int) {
	srv := node(t, func(c *config.Config) { c.MaxClients = n + 100 })
	c := client(t, srv, n+10)
	ctx := context.Background()
	replies := make([]reply, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := doLock(ctx, c, "hot", "TIMEOUT", 60000, "LEASE", 120000)
			if r.status == "LOCKED" {
				// Fill only once everybody else is waiting, to prove that they wait.
				if !within(func() bool { return waiters(srv) == n-1 }) {
					t.Errorf("%d callers waiting, want %d", waiters(srv), n-1)
				}
				if msg := fill(c, "hot", r.token, "v1", "EX", 60); msg != "" {
					t.Errorf("FETCHFILL: %s", msg)
				}
			}
			replies[i] = r
		}()
	}
	wg.Wait()
	got := tally(t, replies)
	if got["LOCKED"] != 1 || got["HIT"] != n-1 {
		t.Fatalf("replies %v, want 1 LOCKED and %d HIT", got, n-1)
	}
	for _, r := range replies {
		if r.status == "HIT" && r.value != "v1" {
			t.Fatalf("HIT with %q, want v1", r.value)
		}
	}
	st := srv.Node().Stats()
	if l, w := st.FetchLocks.Load(), st.FetchWaits.Load(); l != 1 || w != uint64(n-1) {
		t.Fatalf("fetch_locks=%d fetch_waits=%d, want 1 and %d", l, w, n-1)
	}
	if c := srv.Leases().Counts(); c != (fetchlock.Counts{}) {
		t.Fatalf("state left behind: %+v", c)
	}
}

func TestStampede200(t *testing.T)  { stampede(t, 200) }
func TestStampede2000(t *testing.T) { stampede(t, 2000) }

// When a lease ends without a fill — it runs out, its connection closes, or it is released —
// exactly one waiter is handed the lease (LOCKED); the others keep waiting and get HIT from the
// new holder's fill. The old token can no longer fill.
func TestLeaseHandOver(t *testing.T) {
	const waiting = 5
	for _, how := range []string{"expiry", "disconnect", "release"} {
		t.Run(how, func(t *testing.T) {
			srv := node(t, nil)
			holder := client(t, srv, 1)
			c := client(t, srv, waiting+2)
			lease := 60000
			if how == "expiry" {
				lease = 300
			}
			token := mustLock(t, holder, "k", "LEASE", lease)
			results := make(chan reply, waiting)
			for range waiting {
				go func() {
					r := doLock(context.Background(), c, "k", "TIMEOUT", 30000, "LEASE", 60000)
					if r.status == "LOCKED" {
						// The new holder fills once the others are back to waiting.
						if !within(func() bool { return waiters(srv) == waiting-1 }) {
							t.Errorf("%d callers waiting, want %d", waiters(srv), waiting-1)
						}
						if msg := fill(c, "k", r.token, "filled"); msg != "" {
							t.Errorf("new holder's FETCHFILL: %s", msg)
						}
					}
					results <- r
				}()
			}
			// With "expiry" the lease may run out before all have queued; one of them still
			// gets it, and the counts below hold either way.
			if how != "expiry" {
				eventually(t, "the waiters to queue", func() bool { return waiters(srv) == waiting })
			}
			switch how {
			case "disconnect":
				_ = holder.Close()
			case "release":
				if err := holder.Do(context.Background(), "FETCHRELEASE", "k", token).Err(); err != nil {
					t.Fatalf("FETCHRELEASE: %v", err)
				}
			}
			replies := collect(t, results, waiting)
			got := tally(t, replies)
			if got["LOCKED"] != 1 || got["HIT"] != waiting-1 {
				t.Fatalf("replies %v, want 1 LOCKED and %d HIT", got, waiting-1)
			}
			if how != "disconnect" {
				if msg := fill(holder, "k", token, "late"); !isStale(msg) {
					t.Fatalf("old holder's FETCHFILL = %q, want STALE", msg)
				}
			}
			if v, err := c.Get(context.Background(), "k").Result(); err != nil || v != "filled" {
				t.Fatalf("GET = %q, %v; want the new holder's value", v, err)
			}
		})
	}
}

// TIMEOUT arrives at the asked time: never before it, and within the 50 ms after it.
func TestTimeoutArrivesOnTime(t *testing.T) {
	srv := node(t, nil)
	c := client(t, srv, 4)
	mustLock(t, c, "slow", "LEASE", 60000)
	before := srv.Node().Stats().FetchTimeouts.Load()
	for _, ms := range []int{100, 250} {
		stalls := watchStalls()
		r := doLock(context.Background(), c, "slow", "TIMEOUT", ms)
		stall := stalls()
		if r.err != nil || r.status != "TIMEOUT" || !r.null {
			t.Fatalf("FETCHLOCK TIMEOUT %d = %v, want [TIMEOUT, nil]", ms, r)
		}
		asked := time.Duration(ms) * time.Millisecond
		if r.elapsed < asked {
			t.Fatalf("TIMEOUT %d ms arrived after %v: early", ms, r.elapsed)
		}
		// Late by at most 50 ms, not counting time in which this process could not run at all
		// (a loaded machine), which no server can help.
		if r.elapsed > asked+50*time.Millisecond+stall {
			t.Fatalf("TIMEOUT %d ms arrived after %v: more than 50 ms late (process stalled %v)", ms, r.elapsed, stall)
		}
		t.Logf("TIMEOUT %d ms arrived after %v (process stalled %v meanwhile)", ms, r.elapsed, stall)
	}
	if got := srv.Node().Stats().FetchTimeouts.Load() - before; got != 2 {
		t.Fatalf("fetch_timeouts grew by %d, want 2", got)
	}
	// TIMEOUT 0 never waits.
	if r := doLock(context.Background(), c, "slow", "TIMEOUT", 0); r.status != "TIMEOUT" {
		t.Fatalf("TIMEOUT 0 = %v", r)
	}
}

// With stampede_protection = false nobody waits: a caller that would wait gets TIMEOUT at once.
func TestProtectionOff(t *testing.T) {
	srv := node(t, func(c *config.Config) { c.StampedeProtection = false })
	c := client(t, srv, 30)
	token := mustLock(t, c, "k")
	var wg sync.WaitGroup
	replies := make([]reply, 20)
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = doLock(context.Background(), c, "k", "TIMEOUT", 20000)
		}()
	}
	wg.Wait()
	if got := tally(t, replies); got["TIMEOUT"] != len(replies) {
		t.Fatalf("replies %v, want all TIMEOUT", got)
	}
	if w := srv.Node().Stats().FetchWaits.Load(); w != 0 {
		t.Fatalf("fetch_waits = %d with protection off", w)
	}
	if msg := fill(c, "k", token, "v"); msg != "" {
		t.Fatalf("FETCHFILL: %s", msg)
	}
}

// A holder whose key was overwritten, deleted, tag-invalidated or flushed since the grant gets
// STALE and writes nothing: the newer state stays.
func TestFencing(t *testing.T) {
	srv := node(t, nil)
	c := client(t, srv, 4)
	ctx := context.Background()
	cases := []struct {
		name    string
		meddle  func(key string)
		want    string // the value left; "" means the key is missing
		refresh bool   // the lease is a REFRESH lease on a live key
	}{
		{name: "overwritten", meddle: func(k string) { c.Set(ctx, k, "newer", 0) }, want: "newer"},
		{name: "deleted", meddle: func(k string) {
			c.Set(ctx, k, "newer", 0)
			c.Del(ctx, k)
		}},
		{name: "deleted-then-notified", meddle: func(k string) {
			// What TAGINVALIDATE does for each key it deletes: delete in the store, then notify.
			c.Set(ctx, k, "newer", 0)
			if _, err := srv.Node().Store().Do(ctx, []byte(k), store.Op{Kind: store.Delete}); err != nil {
				t.Fatal(err)
			}
			srv.Node().NotifyKey([]byte(k))
		}},
		{name: "taginvalidate", meddle: func(k string) {
			c.Do(ctx, "SET", k, "newer", "TAGS", "t:"+k)
			if n := c.Do(ctx, "TAGINVALIDATE", "t:"+k).Val(); n != int64(1) {
				t.Fatalf("TAGINVALIDATE = %v", n)
			}
		}},
		{name: "flushed", meddle: func(string) { c.FlushAll(ctx) }},
		{name: "incremented", meddle: func(k string) { c.Incr(ctx, k) }, want: "1"},
		{name: "mset", meddle: func(k string) { c.MSet(ctx, k, "m", "other", "o") }, want: "m"},
		{name: "refresh-overwritten", refresh: true, meddle: func(k string) { c.Set(ctx, k, "newer", 0) }, want: "newer"},
		{name: "refresh-deleted", refresh: true, meddle: func(k string) { c.Del(ctx, k) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "fence:" + tc.name
			var token string
			if tc.refresh {
				c.Set(ctx, key, "old", 10*time.Second)
				r := doLock(ctx, c, key, "REFRESH", 60000)
				if r.status != "REFRESH" || r.value != "old" || len(r.token) != 32 {
					t.Fatalf("FETCHLOCK REFRESH = %v", r)
				}
				token = r.token
			} else {
				token = mustLock(t, c, key)
			}
			tc.meddle(key)
			if msg := fill(c, key, token, "stale-fill"); !isStale(msg) {
				t.Fatalf("FETCHFILL after the key changed = %q, want STALE", msg)
			}
			v, err := c.Get(ctx, key).Result()
			if tc.want == "" {
				if err != redis.Nil {
					t.Fatalf("GET = %q, %v; want the key missing", v, err)
				}
			} else if err != nil || v != tc.want {
				t.Fatalf("GET = %q, %v; want %q", v, err, tc.want)
			}
		})
	}
}

// A wrong token is an error and changes nothing: the holder keeps its lease.
func TestWrongToken(t *testing.T) {
	srv := node(t, nil)
	c := client(t, srv, 2)
	ctx := context.Background()
	token := mustLock(t, c, "k")
	other := "0123456789abcdef0123456789abcdef"
	if other == token {
		other = "fedcba9876543210fedcba9876543210"
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"FETCHFILL", "k", other, "x"}, "STALE"},
		{[]any{"FETCHRELEASE", "k", other}, "STALE"},
		{[]any{"FETCHFILL", "k", "nothex", "x"}, "ERR invalid FETCHLOCK token"},
		{[]any{"FETCHRELEASE", "k", token + "00"}, "ERR invalid FETCHLOCK token"},
		{[]any{"FETCHFILL", "other", token, "x"}, "STALE"},
	} {
		err := c.Do(ctx, tc.args...).Err()
		if err == nil || len(err.Error()) < len(tc.want) || err.Error()[:len(tc.want)] != tc.want {
			t.Fatalf("%v = %v, want %s…", tc.args, err, tc.want)
		}
	}
	if n, _ := c.Exists(ctx, "k", "other").Result(); n != 0 {
		t.Fatalf("a rejected fill wrote %d keys", n)
	}
	if msg := fill(c, "k", token, "v", "PX", 60000, "TAGS", "t1", "t2"); msg != "" {
		t.Fatalf("holder's FETCHFILL after wrong tokens: %s", msg)
	}
	if ttl := c.PTTL(ctx, "k").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("PTTL after FETCHFILL PX 60000 = %v", ttl)
	}
	if msg := fill(c, "k", token, "again"); !isStale(msg) {
		t.Fatalf("second FETCHFILL with a used token = %q, want STALE", msg)
	}
}

// Argument checking: syntax, ranges and arity.
func TestArguments(t *testing.T) {
	srv := node(t, nil)
	c := client(t, srv, 2)
	ctx := context.Background()
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"FETCHLOCK"}, "ERR wrong number of arguments for 'fetchlock' command"},
		{[]any{"FETCHLOCK", "k", "TIMEOUT"}, "ERR syntax error"},
		{[]any{"FETCHLOCK", "k", "WAIT", "1"}, "ERR syntax error"},
		{[]any{"FETCHLOCK", "k", "TIMEOUT", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"FETCHLOCK", "k", "TIMEOUT", "-1"}, "ERR TIMEOUT is out of range, must be between 0 and 3600000 milliseconds"},
		{[]any{"FETCHLOCK", "k", "TIMEOUT", "3600001"}, "ERR TIMEOUT is out of range, must be between 0 and 3600000 milliseconds"},
		{[]any{"FETCHLOCK", "k", "LEASE", "0"}, "ERR LEASE is out of range, must be between 1 and 3600000 milliseconds"},
		{[]any{"FETCHLOCK", "k", "REFRESH", "0"}, "ERR REFRESH is out of range, must be between 1 and 31536000000 milliseconds"},
		{[]any{"FETCHFILL", "k", "t"}, "ERR wrong number of arguments for 'fetchfill' command"},
		{[]any{"FETCHFILL", "k", "0123456789abcdef0123456789abcdef", "v", "EX"}, "ERR syntax error"},
		{[]any{"FETCHFILL", "k", "0123456789abcdef0123456789abcdef", "v", "EX", "1", "PX", "1"}, "ERR syntax error"},
		{[]any{"FETCHFILL", "k", "0123456789abcdef0123456789abcdef", "v", "TAGS"}, "ERR syntax error"},
		{[]any{"FETCHFILL", "k", "0123456789abcdef0123456789abcdef", "v", "EX", "0"}, "ERR invalid expire time in 'fetchfill' command"},
		{[]any{"FETCHFILL", "k", "0123456789abcdef0123456789abcdef", "v", "PX", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"FETCHRELEASE", "k"}, "ERR wrong number of arguments for 'fetchrelease' command"},
	} {
		if err := c.Do(ctx, tc.args...).Err(); err == nil || err.Error() != tc.want {
			t.Errorf("%v = %v, want %q", tc.args, err, tc.want)
		}
	}
	// RESP2 replies: TIMEOUT's nil is a null bulk string.
	c2 := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 2})
	defer c2.Close()
	mustLock(t, c, "held")
	if r := doLock(ctx, c2, "held", "TIMEOUT", 0); r.status != "TIMEOUT" || !r.null {
		t.Fatalf("RESP2 TIMEOUT reply = %v", r)
	}
	c2.Set(ctx, "live", "v", 0)
	if r := doLock(ctx, c2, "live"); r.status != "HIT" || r.value != "v" {
		t.Fatalf("RESP2 HIT reply = %v", r)
	}
}

// REFRESH: under 500 concurrent readers of a key approaching expiry, exactly one REFRESH is
// handed out and no reader ever sees a miss.
func TestRefreshUnderLoad(t *testing.T) {
	const readers = 500
	srv := node(t, nil)
	c := client(t, srv, readers+10)
	ctx := context.Background()
	var refreshes, hits, bad atomic.Int64
	var wg, ready sync.WaitGroup
	start := make(chan struct{})
	var end time.Time
	for range readers {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			err := c.Ping(ctx).Err() // every reader has its connection before the clock starts
			ready.Done()
			<-start
			if err != nil {
				t.Errorf("PING: %v", err)
				return
			}
			for time.Now().Before(end) {
				r := doLock(ctx, c, "hot", "REFRESH", 700, "TIMEOUT", 20000)
				switch {
				case r.err != nil || (r.status != "HIT" && r.status != "REFRESH"):
					bad.Add(1)
					t.Errorf("reader got %v", r)
					if r.status == "LOCKED" {
						fill(c, "hot", r.token, "v2", "PX", 60000)
					}
					return
				case r.status == "REFRESH":
					refreshes.Add(1)
					// A slow fetch: the key expires before the fill, so readers then find it
					// missing with the lease held, and wait for the fill instead of missing.
					time.Sleep(900 * time.Millisecond)
					if msg := fill(c, "hot", r.token, "v2", "PX", 60000); msg != "" {
						t.Errorf("refresh FETCHFILL: %s", msg)
					}
				default:
					hits.Add(1)
					if r.value != "v1" && r.value != "v2" {
						t.Errorf("HIT with %q", r.value)
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	ready.Wait()
	// The refresh window opens 300 ms after the SET; the key expires at 1 s, before the
	// refresher (fetching for 900 ms) fills it; readers go on until 1.4 s.
	if err := c.Set(ctx, "hot", "v1", time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	end = time.Now().Add(1400 * time.Millisecond)
	close(start)
	wg.Wait()
	if refreshes.Load() != 1 || bad.Load() != 0 {
		t.Fatalf("%d REFRESH replies and %d misses among %d hits, want exactly 1 and 0",
			refreshes.Load(), bad.Load(), hits.Load())
	}
	if v := c.Get(ctx, "hot").Val(); v != "v2" {
		t.Fatalf("value after refresh %q", v)
	}
	t.Logf("%d hits, 1 refresh, %d readers waited for the refresh fill", hits.Load(),
		srv.Node().Stats().FetchWaits.Load())
}

// Waiters that time out or disconnect leave no waiter entry, lease or goroutine behind (the
// goroutine check is TestMain's goleak), and a disconnected waiter is noticed long before its
// TIMEOUT.
func TestWaitersLeaveNothingBehind(t *testing.T) {
	srv := node(t, nil)
	holder := client(t, srv, 1)
	token := mustLock(t, holder, "k", "LEASE", 120000)

	// Waiters that time out.
	c := client(t, srv, 25)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := doLock(context.Background(), c, "k", "TIMEOUT", 100); r.status != "TIMEOUT" {
				t.Errorf("got %v, want TIMEOUT", r)
			}
		}()
	}
	wg.Wait()
	if got := srv.Leases().Counts(); got != (fetchlock.Counts{Keys: 1, Leases: 1}) {
		t.Fatalf("after timeouts: %+v, want only the holder's lease", got)
	}

	// Waiters that disconnect, on raw sockets, with a TIMEOUT far beyond the test.
	clientsBefore := srv.Node().Stats().Connections.Load()
	var conns []net.Conn
	for range 50 {
		nc, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write([]byte("*4\r\n$9\r\nFETCHLOCK\r\n$1\r\nk\r\n$7\r\nTIMEOUT\r\n$6\r\n600000\r\n")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	eventually(t, "50 waiters", func() bool { return waiters(srv) == 50 })
	_ = clientsBefore
	for _, nc := range conns {
		_ = nc.Close()
	}
	eventually(t, "the disconnected waiters to be gone", func() bool {
		return srv.Leases().Counts() == fetchlock.Counts{Keys: 1, Leases: 1}
	})

	// A holder that disconnects while others wait hands its lease on; one that was alone leaves
	// nothing.
	if err := holder.Do(context.Background(), "FETCHRELEASE", "k", token).Err(); err != nil {
		t.Fatal(err)
	}
	solo := client(t, srv, 1)
	mustLock(t, solo, "solo")
	_ = solo.Close()
	eventually(t, "all lease state to be gone", func() bool { return srv.Leases().Counts() == fetchlock.Counts{} })
}

// A connection cannot hold unbounded leases; the bound is per connection.
func TestLeaseBoundPerConnection(t *testing.T) {
	srv := node(t, nil)
	m := fetchlock.New(fetchlock.Config{Store: srv.Node().Store(), MaxLeasesPerClient: 3})
	defer m.Shutdown(context.Background())
	cl := &fakeClient{}
	for i := range 3 {
		r, err := m.Lock(context.Background(), []byte("b"+strconv.Itoa(i)), fetchlock.LockRequest{Lease: time.Minute, Client: cl})
		if err != nil || r.Status != fetchlock.Locked {
			t.Fatalf("lease %d: %v %v", i, r.Status, err)
		}
	}
	if _, err := m.Lock(context.Background(), []byte("b3"), fetchlock.LockRequest{Lease: time.Minute, Client: cl}); err != fetchlock.ErrTooManyLeases {
		t.Fatalf("fourth lease: %v, want ErrTooManyLeases", err)
	}
	cl.close()
	if got := m.Counts(); got != (fetchlock.Counts{}) {
		t.Fatalf("after the client closed: %+v", got)
	}
}

// fakeClient is a Client without a socket, for driving a Manager directly.
type fakeClient struct {
	mu    sync.Mutex
	hooks []func()
}

func (f *fakeClient) OnClose(fn func()) {
	f.mu.Lock()
	f.hooks = append(f.hooks, fn)
	f.mu.Unlock()
}

func (f *fakeClient) Blocking(fn func()) { fn() }

func (f *fakeClient) close() {
	f.mu.Lock()
	hooks := f.hooks
	f.hooks = nil
	f.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
}

// Shutdown answers waiting callers TIMEOUT at once instead of holding the shutdown up.
func TestShutdownWakesWaiters(t *testing.T) {
	srv := node(t, nil)
	c := client(t, srv, 12)
	mustLock(t, c, "k", "LEASE", 120000)
	results := make(chan reply, 10)
	for range 10 {
		go func() { results <- doLock(context.Background(), c, "k", "TIMEOUT", 120000) }()
	}
	eventually(t, "10 waiters", func() bool { return waiters(srv) == 10 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, r := range collect(t, results, 10) {
		if r.status != "TIMEOUT" && r.err == nil {
			t.Fatalf("waiter got %v at shutdown, want TIMEOUT (or the connection closed)", r)
		}
	}
}
