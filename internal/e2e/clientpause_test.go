package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// held sends args on c and reports the reply that arrives within wait, or "" if none does: the
// command is being held back.
func held(t *testing.T, c *respclient.Conn, wait time.Duration, args ...any) string {
	t.Helper()
	c.Send(args...)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(wait)
	defer c.SetTimeout(10 * time.Second)
	v, _, err := c.Receive()
	if err != nil {
		return ""
	}
	return v.String()
}

// next reads the reply to a command held before, failing t if none arrives in 10 s.
func next(t *testing.T, c *respclient.Conn) string {
	t.Helper()
	v, _, err := c.Receive()
	if err != nil {
		t.Fatalf("no reply after the pause: %v", err)
	}
	return v.String()
}

// pauseSession is what TestClientPauseLikeRedis observes on one server: which commands a WRITE
// pause and an ALL pause hold back, and what each answers once released.
func pauseSession(t *testing.T, addr string) []string {
	admin, a, b := respclient.Dial(t, addr), respclient.Dial(t, addr), respclient.Dial(t, addr)
	for _, c := range []*respclient.Conn{admin, a, b} {
		c.SetTimeout(10 * time.Second)
	}
	var out []string
	note := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	const brief = 300 * time.Millisecond
	admin.Do("SET", "k", "v").OK()

	admin.Do("CLIENT", "PAUSE", "30000", "WRITE").OK()
	note("GET in a WRITE pause: %s", held(t, a, 5*time.Second, "GET", "k"))
	note("TTL in a WRITE pause: %s", held(t, a, 5*time.Second, "TTL", "k"))
	note("EVAL_RO in a WRITE pause: %s", held(t, a, 5*time.Second, "EVAL_RO", "return 1", "0"))
	note("SET in a WRITE pause: %q", held(t, b, brief, "SET", "k", "w"))
	note("MULTI in a WRITE pause: %s", held(t, a, 5*time.Second, "MULTI"))
	note("SET queued in a WRITE pause: %q", held(t, a, brief, "SET", "q", "1"))
	admin.Do("CLIENT", "UNPAUSE").OK()
	note("SET once unpaused: %s", next(t, b))
	note("queued SET once unpaused: %s", next(t, a))
	note("EXEC: %s", a.Do("EXEC").Value)

	admin.Do("CLIENT", "PAUSE", "30000", "WRITE").OK()
	note("EVAL in a WRITE pause: %q", held(t, b, brief, "EVAL", "return 1", "0"))
	admin.Do("CLIENT", "PAUSE", "0", "WRITE").OK() // a shorter pause leaves the end where it was
	note("DEL in a WRITE pause shortened: %q", held(t, a, brief, "DEL", "nosuch"))
	note("PUBSUB NUMSUB in a WRITE pause: %s", held(t, admin, 5*time.Second, "PUBSUB", "NUMSUB", "ch"))
	pub := respclient.Dial(t, addr)
	pub.SetTimeout(10 * time.Second)
	note("PUBLISH in a WRITE pause: %q", held(t, pub, brief, "PUBLISH", "ch", "m"))
	admin.Do("CLIENT", "UNPAUSE").OK()
	note("EVAL once unpaused: %s", next(t, b))
	note("DEL once unpaused: %s", next(t, a))
	note("PUBLISH once unpaused: %s", next(t, pub))

	admin.Do("CLIENT", "PAUSE", "1500", "ALL").OK()
	note("PING in an ALL pause: %q", held(t, a, brief, "PING"))
	note("GET in an ALL pause: %q", held(t, b, brief, "GET", "k"))
	note("PING at the pause's end: %s", next(t, a))
	note("GET at the pause's end: %s", next(t, b))
	return out
}

// TestClientPauseLikeRedis compares CLIENT PAUSE and UNPAUSE with Redis's: their errors, byte
// for byte, then a session on each server, on event loops and with a goroutine per client: a
// WRITE pause holds back SET, a SET queued in MULTI, EVAL, DEL and PUBLISH, not GET, TTL,
// EVAL_RO or PUBSUB, and releases them in order at UNPAUSE; a shorter pause does not end a
// longer one; an ALL pause holds every command until it ends.
func TestClientPauseLikeRedis(t *testing.T) {
	rs := redistest.Start(t)
	want := pauseSession(t, rs.Addr)
	for _, loops := range []int{1, 0} {
		t.Run(fmt.Sprintf("event_loops=%d", loops), func(t *testing.T) {
			cfg := testnode.Config()
			cfg.EventLoops = loops
			vela := testnode.Start(t, cfg)
			sameReplies(t, respclient.Dial(t, rs.Addr), respclient.Dial(t, vela.Addr()), [][]any{
				{"CLIENT", "PAUSE"}, {"CLIENT", "PAUSE", "abc"}, {"CLIENT", "PAUSE", "-1"},
				{"CLIENT", "PAUSE", "100", "foo"}, {"CLIENT", "PAUSE", "100", "write", "extra"},
				{"CLIENT", "PAUSE", "9223372036854775807"}, {"PING"}, {"CLIENT", "UNPAUSE", "x"},
				{"CLIENT", "PAUSE", "0"}, {"CLIENT", "PAUSE", "0", "all"}, {"CLIENT", "UNPAUSE"},
			})
			got := pauseSession(t, vela.Addr())
			for i := range max(len(want), len(got)) {
				var w, g string
				if i < len(want) {
					w = want[i]
				}
				if i < len(got) {
					g = got[i]
				}
				if w != g {
					t.Errorf("redis: %s\n  vela: %s", w, g)
				}
			}
		})
	}
}

// TestClientPauseStopsExpiry: while clients are paused, a key whose time has run out is not
// removed (expired_keys stays 0), as Redis stops its active expiry then; once the pause ends the
// sweep removes it. The sweep runs every 50 ms here, so without the hold it would be removed long
// before the pause ends. (DBSIZE cannot tell: Vela's counts only live keys.)
func TestClientPauseStopsExpiry(t *testing.T) {
	cfg := testnode.Config()
	cfg.SweepInterval = 50 * time.Millisecond
	for name, addr := range map[string]string{"redis": redistest.Start(t).Addr, "vela": testnode.Start(t, cfg).Addr()} {
		t.Run(name, func(t *testing.T) {
			c := respclient.Dial(t, addr)
			expired := func() string {
				for _, l := range infoLines(c, "stats") {
					if v, ok := strings.CutPrefix(l, "expired_keys:"); ok {
						return v
					}
				}
				t.Fatal("INFO stats has no expired_keys")
				return ""
			}
			c.Do("CONFIG", "RESETSTAT").OK()
			c.Do("SET", "short", "v", "PX", "100").OK()
			c.Do("CLIENT", "PAUSE", "2000", "WRITE").OK()
			time.Sleep(600 * time.Millisecond)
			if n := expired(); n != "0" {
				t.Errorf("expired_keys during the pause = %s, want 0", n)
			}
			c.Do("CLIENT", "UNPAUSE").OK()
			deadline := time.Now().Add(5 * time.Second)
			for expired() != "1" {
				if time.Now().After(deadline) {
					t.Fatal("the expired key was not swept after the pause")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
