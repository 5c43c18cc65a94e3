package difftest_test

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// otherClientWrites are what the second client does between the first one's WATCH and EXEC:
// writes that change a key, writes that change nothing (which must not break the watch), and
// reads. {k} is a watched or unwatched key, {v} a value.
var otherClientWrites = [][]string{
	{"SET", "{k}", "{v}"}, {"SET", "{k}", "{v}", "NX"}, {"SET", "{k}", "{v}", "XX"},
	{"SETNX", "{k}", "{v}"}, {"GETSET", "{k}", "{v}"}, {"MSET", "{k}", "{v}", "c", "{v}"},
	{"MSETNX", "{k}", "{v}", "c", "{v}"}, {"DEL", "{k}"}, {"UNLINK", "{k}", "c"}, {"GETDEL", "{k}"},
	{"INCR", "{k}"}, {"INCRBYFLOAT", "{k}", "1.5"}, {"APPEND", "{k}", "{v}"}, {"APPEND", "{k}", ""},
	{"EXPIRE", "{k}", "1000"}, {"EXPIRE", "{k}", "1000", "NX"}, {"EXPIRE", "{k}", "5", "GT"},
	{"PEXPIRE", "{k}", "-1"}, {"PERSIST", "{k}"}, {"GETEX", "{k}"}, {"GETEX", "{k}", "EX", "1000"},
	{"GETEX", "{k}", "PERSIST"}, {"GET", "{k}"}, {"EXISTS", "{k}"}, {"TTL", "{k}"}, {"TOUCH", "{k}"},
	{"FLUSHALL"},
}

// TestWatchDifferential runs seeded rounds of WATCH, writes by another client (or by the same
// one), MULTI … EXEC against Redis and Vela on every store (on the redis store, with and without
// the near cache, the transaction runs in the backing Redis), with two connections
// to each, and compares every reply byte for byte: EXEC must run or refuse (a null array) exactly
// when Redis does, for writes that change a watched key and for those that change nothing.
func TestWatchDifferential(t *testing.T) {
	for _, storeType := range []string{"memory", "disk", "redis", "redis-near"} {
		t.Run(storeType, func(t *testing.T) {
			seed, _ := seedAndSteps(t, 0)
			t.Logf("seed %d (DIFFTEST_SEED replays it)", seed)
			rng := rand.New(rand.NewSource(seed))
			rs := redistest.Start(t, "--databases", "1")
			vela := startOn(t, onStore(t, storeType))
			type pair struct{ redis, vela *respclient.Conn }
			a := pair{respclient.Dial(t, rs.Addr), respclient.Dial(t, vela.Addr())}
			b := pair{respclient.Dial(t, rs.Addr), respclient.Dial(t, vela.Addr())}
			var history []string
			do := func(p pair, args ...string) {
				t.Helper()
				cmd := make([]any, len(args))
				for i, s := range args {
					cmd[i] = s
				}
				w := p.redis.Do(cmd...).Raw
				g := p.vela.Do(cmd...).Raw
				history = append(history, fmt.Sprint(args))
				if string(w) != string(g) {
					t.Fatalf("%v: redis %q, vela %q\nhistory:\n%v", args, w, g, history)
				}
			}
			keys := []string{"a", "b", "c"}
			fill := func(tpl []string) []string {
				out := make([]string, len(tpl))
				for i, s := range tpl {
					switch s {
					case "{k}":
						s = keys[rng.Intn(len(keys))]
					case "{v}":
						s = strconv.Itoa(rng.Intn(20))
					}
					out[i] = s
				}
				return out
			}
			for range 400 {
				history = history[:0]
				if rng.Intn(4) == 0 { // start from keys with and without expiry
					do(a, "SET", keys[rng.Intn(3)], "1", "EX", "1000")
				}
				do(a, append([]string{"WATCH"}, keys[:1+rng.Intn(2)]...)...)
				if rng.Intn(8) == 0 {
					do(a, "WATCH", keys[rng.Intn(3)]) // a second WATCH adds to the first
				}
				for range rng.Intn(3) {
					tpl := otherClientWrites[rng.Intn(len(otherClientWrites))]
					if tpl[0] == "FLUSHALL" && rng.Intn(4) != 0 {
						continue // keep flushes rare
					}
					who := b
					if rng.Intn(5) == 0 {
						who = a // the watching client's own write breaks its watch too
					}
					do(who, fill(tpl)...)
				}
				switch rng.Intn(10) {
				case 0:
					do(a, "UNWATCH")
				case 1:
					do(a, "MULTI")
					do(a, "DISCARD") // ends the watch as well
				}
				do(a, "MULTI")
				do(a, "INCR", "n")
				do(a, fill([]string{"SET", "{k}", "{v}"})...)
				do(a, "GET", "a")
				do(a, "EXEC")
			}
		})
	}
}

// TestWatchExpiry: a watched key that expires before EXEC breaks the watch, as in Redis 7, and
// one that had expired already when watched does not.
func TestWatchExpiry(t *testing.T) {
	rs := redistest.Start(t, "--databases", "1")
	vela := testnode.Start(t, testnode.Config())
	for _, addr := range []string{rs.Addr, vela.Addr()} {
		c := respclient.Dial(t, addr)
		c.Do("SET", "k", "1", "PX", "100").OK()
		c.Do("WATCH", "k").OK()
		time.Sleep(200 * time.Millisecond)
		c.Do("MULTI").OK()
		c.Do("GET", "k").Status("QUEUED")
		c.Do("EXEC").Raws("*-1\r\n")

		c.Do("SET", "k", "1", "PX", "50").OK()
		time.Sleep(100 * time.Millisecond)
		c.Do("WATCH", "k").OK()
		c.Do("MULTI").OK()
		c.Do("GET", "k").Status("QUEUED")
		c.Do("EXEC").Raws("*1\r\n$-1\r\n")
	}
}

// TestResetDifferential: RESET leaves a connection as a new one is, on Redis and on Vela alike:
// no transaction, no watches, no name, RESP2, and (with a password) not authenticated, under
// the unauthenticated request limits again.
func TestResetDifferential(t *testing.T) {
	const pass = "s3cret"
	rs := redistest.Start(t, "--databases", "1", "--requirepass", pass)
	cfg := testnode.Config()
	cfg.RequirePass = pass
	vela := testnode.Start(t, cfg)
	big := make([]any, 0, 40)
	big = append(big, "MGET")
	for i := range 39 {
		big = append(big, fmt.Sprint("k", i))
	}
	steps := [][]any{
		{"AUTH", pass}, {"CLIENT", "SETNAME", "before"}, {"HELLO", "3"}, {"SET", "a", "1"},
		{"WATCH", "a"}, {"MULTI"}, {"SET", "a", "2"}, {"RESET"}, {"EXEC"}, {"GET", "a"},
		{"CLIENT", "GETNAME"}, {"AUTH", pass}, {"GET", "a"}, {"GET", "nokey"}, {"CLIENT", "GETNAME"},
		{"EXEC"}, {"RESET", "x"}, {"MULTI"}, {"RESET"}, {"EXEC"}, big,
	}
	rc, vc := respclient.Dial(t, rs.Addr), respclient.Dial(t, vela.Addr())
	for _, args := range steps {
		w, g := rc.Do(args...).Raw, vc.Do(args...).Raw
		if args[0] == "HELLO" { // the connection ids differ
			w, g = w[:1], g[:1]
		}
		if string(w) != string(g) {
			t.Fatalf("%v: redis %q, vela %q", args, w, g)
		}
	}
}

// TestClientListInMulti: CLIENT LIST shows a client inside MULTI as Redis does, with the x flag
// and the number of commands it has queued, the d flag once a watched key has changed, and
// returns it to flags=N multi=-1 after DISCARD or EXEC.
func TestClientListInMulti(t *testing.T) {
	rs := redistest.Start(t, "--databases", "1")
	vela := testnode.Start(t, testnode.Config())
	fields := func(list, name string) string {
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, " name="+name+" ") {
				var out []string
				for _, f := range strings.Fields(line) {
					if strings.HasPrefix(f, "flags=") || strings.HasPrefix(f, "multi=") {
						out = append(out, f)
					}
				}
				return strings.Join(out, " ")
			}
		}
		return "no client " + name
	}
	for _, addr := range []string{rs.Addr, vela.Addr()} {
		a, b := respclient.Dial(t, addr), respclient.Dial(t, addr)
		a.Do("CLIENT", "SETNAME", "txc").OK()
		a.Do("MULTI").OK()
		if got := fields(b.Do("CLIENT", "LIST").Value.Str, "txc"); got != "flags=x multi=0" {
			t.Errorf("%s after MULTI: %s", addr, got)
		}
		a.Do("SET", "k", "v").Status("QUEUED")
		a.Do("NOSUCH").ErrPrefix("ERR unknown command")
		a.Do("GET", "k").Status("QUEUED")
		// After a refused command the transaction is doomed: the GET is answered QUEUED but
		// not kept, so only the SET counts.
		if got := fields(b.Do("CLIENT", "LIST").Value.Str, "txc"); got != "flags=x multi=1" {
			t.Errorf("%s with two queued: %s", addr, got)
		}
		a.Do("DISCARD").OK()
		if got := fields(b.Do("CLIENT", "LIST").Value.Str, "txc"); got != "flags=N multi=-1" {
			t.Errorf("%s after DISCARD: %s", addr, got)
		}
		// d: a watched key changed.
		a.Do("WATCH", "wk").OK()
		b.Do("SET", "wk", "1").OK()
		if got := fields(a.Do("CLIENT", "INFO").Value.Str, "txc"); got != "flags=d multi=-1" {
			t.Errorf("%s with a changed watch: %s", addr, got)
		}
		a.Do("MULTI").OK()
		a.Do("GET", "x").Status("QUEUED")
		if got := fields(b.Do("CLIENT", "LIST").Value.Str, "txc"); got != "flags=xd multi=0" {
			t.Errorf("%s in MULTI with a changed watch: %s", addr, got)
		}
		a.Do("EXEC").Raws("*-1\r\n")
		if got := fields(b.Do("CLIENT", "LIST").Value.Str, "txc"); got != "flags=N multi=-1" {
			t.Errorf("%s after EXEC: %s", addr, got)
		}
	}
}

// TestExecFreezesTime: the commands of one EXEC judge expiry at one instant, as in Redis 7 (a
// key live when EXEC starts does not expire halfway through it). A transaction sets a key for
// 5 ms, runs 20,000 INCRs (longer than that on Vela), then reads the key, checks that it
// exists, gives it 100 s more and reads its TTL: Redis and Vela, on the memory and the disk
// store, must answer the whole EXEC byte for byte alike. (TTL and PTTL read the clock in Redis
// 7.0, so a TTL read long after its expiry was set depends on how long the INCRs took.)
func TestExecFreezesTime(t *testing.T) {
	rs := redistest.Start(t, "--databases", "1")
	disk := testnode.Config()
	disk.Store.Type = "disk"
	disk.Store.DiskPath = t.TempDir() + "/vela.db"
	servers := map[string]string{"redis": rs.Addr, "vela": testnode.Start(t, testnode.Config()).Addr(),
		"vela-disk": testnode.Start(t, disk).Addr()}
	replies := map[string][]byte{}
	for name, addr := range servers {
		c := respclient.Dial(t, addr)
		c.SetTimeout(time.Minute)
		c.Do("MULTI").OK()
		c.Send("SET", "k", "v", "PX", "5")
		for range 20000 {
			c.Send("INCR", "n")
		}
		c.Send("GET", "k")
		c.Send("EXISTS", "k")
		c.Send("EXPIRE", "k", "100")
		c.Send("TTL", "k")
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		for range 20005 {
			if _, _, err := c.Receive(); err != nil { // QUEUED
				t.Fatal(err)
			}
		}
		replies[name] = c.Do("EXEC").Raw
		c.Do("EXISTS", "k").Int(1) // expired since, but EXPIRE gave it 100 s
	}
	for _, name := range []string{"vela", "vela-disk"} {
		if w, g := replies["redis"], replies[name]; string(w) != string(g) {
			tail := func(b []byte) string { return string(b[max(0, len(b)-60):]) }
			t.Errorf("EXEC on %s differs from Redis's: its end %q, Redis's %q", name, tail(g), tail(w))
		}
	}
}
