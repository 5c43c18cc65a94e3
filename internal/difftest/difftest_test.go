package difftest_test

import (
	"cmp"
	"fmt"
	"math/rand"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/difftest"
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// maxBulk is both servers' proto-max-bulk-len: Redis's smallest allowed value, so that APPEND
// can overflow it and an oversized bulk length can be sent cheaply.
const maxBulk = 1 << 20

// seedAndSteps reads DIFFTEST_SEED and DIFFTEST_STEPS, defaulting to a time-based seed and def.
func seedAndSteps(t *testing.T, def int) (int64, int) {
	t.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv("DIFFTEST_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("DIFFTEST_SEED: %v", err)
		}
		seed = v
	}
	steps := def
	if s := os.Getenv("DIFFTEST_STEPS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("DIFFTEST_STEPS: %v", err)
		}
		steps = v
	}
	return seed, steps
}

// runSequences runs n sequences of steps/n steps each (odd ones over RESP3) and fails t with the
// seed on any mismatch. It returns the number of commands sent to each server.
func runSequences(t *testing.T, redisAddr, velaAddr string, seed int64, steps, n int, gen difftest.GenOptions, auth string) (int, map[string]map[string]int) {
	t.Helper()
	total := 0
	replies := map[string]map[string]int{}
	for i := 0; i < n; i++ {
		seqSeed := seed + int64(i)
		resp3 := i%2 == 1
		name := fmt.Sprintf("seq%d-resp%d", i, map[bool]int{false: 2, true: 3}[resp3])
		t.Run(name, func(t *testing.T) {
			for _, addr := range []string{redisAddr, velaAddr} {
				c := respclient.Dial(t, addr)
				if auth != "" {
					c.Do("AUTH", auth).OK()
				}
				c.Do("FLUSHALL").OK()
				_ = c.Close()
			}
			res, err := difftest.Run(difftest.Options{
				RedisAddr: redisAddr, VelaAddr: velaAddr, Seed: seqSeed, Steps: steps / n, RESP3: resp3, Gen: gen,
			})
			total += res.Commands
			for name, outcomes := range res.Replies {
				if replies[name] == nil {
					replies[name] = map[string]int{}
				}
				for o, c := range outcomes {
					replies[name][o] += c
				}
			}
			if err != nil {
				t.Fatalf("seed %d: %v", seqSeed, err)
			}
			for _, m := range res.Mismatches {
				t.Errorf("seed %d: %s", seqSeed, m)
			}
			if len(res.Mismatches) > 0 {
				t.Logf("rerun with DIFFTEST_SEED=%d (sequence %d of this test uses seed+%d)", seed, i, i)
			}
		})
	}
	return total, replies
}

// coverage lists the commands every full run must have seen succeed and fail (a command that
// cannot fail, like TIME without arguments, still fails on a wrong argument count).
var coverage = []string{
	"get", "set", "setnx", "setex", "psetex", "getset", "getdel", "getex", "mget", "mset", "msetnx",
	"incr", "decr", "incrby", "decrby", "incrbyfloat", "append", "strlen", "getrange", "substr",
	"setrange",
	"del", "unlink", "exists", "touch", "type", "expire", "pexpire", "expireat", "pexpireat",
	"ttl", "pttl", "expiretime", "pexpiretime", "persist", "keys", "scan",
	"ping", "echo", "select", "auth", "hello", "client|setname", "client|getname", "client|id",
	"client|list", "command", "command|count", "command|info", "command|docs", "command|getkeys",
	"command|getkeysandflags", "config|get", "info", "role",
	"time", "dbsize", "flushdb", "flushall", "multi", "exec", "discard", "watch", "unwatch", "reset",
}

// checkCoverage fails t when a command of the list never succeeded or never failed. Commands
// whose only failure is an argument count (or that cannot fail at all) need only succeed.
func checkCoverage(t *testing.T, replies map[string]map[string]int) {
	t.Helper()
	okOnly := map[string]bool{"command": true, "info": true, "command|info": true, "command|docs": true}
	for _, name := range coverage {
		r := replies[name]
		if r["ok"] == 0 {
			t.Errorf("%s never succeeded (%v)", name, r)
		}
		if r["error"] == 0 && !okOnly[name] {
			t.Errorf("%s never failed (%v)", name, r)
		}
	}
	if testing.Verbose() {
		names := make([]string, 0, len(replies))
		for name := range replies {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			t.Logf("%-20.20q ok %6d  error %6d", name, replies[name]["ok"], replies[name]["error"])
		}
	}
}

// TestDifferential sends at least 20,000 random commands (every command of DESIGN.md §3
// "Connection and server", "Strings" and "Keys", with options, error cases and binary values) to
// a real redis-server and to Vela, half of the sequences over RESP3, and requires identical
// replies. See doc.go for what is compared how.
func TestDifferential(t *testing.T) {
	def := 24000
	if testing.Short() {
		def = 4000
	}
	seed, steps := seedAndSteps(t, def)
	t.Logf("seed %d, %d steps", seed, steps)
	rs := redistest.Start(t, "--databases", "1", "--proto-max-bulk-len", strconv.Itoa(maxBulk))
	cfg := testnode.Config()
	cfg.ProtoMaxBulkLen = maxBulk
	vela := testnode.Start(t, cfg)
	total, replies := runSequences(t, rs.Addr, vela.Addr(), seed, steps, 8, difftest.GenOptions{MaxBulkLen: maxBulk}, "")
	t.Logf("%d commands sent to each server", total)
	if t.Failed() {
		return
	}
	sameErrorCounts(t, rs.Addr, vela.Addr())
	if steps >= 20000 && total < 20000 {
		t.Fatalf("only %d commands ran", total)
	}
	if steps >= 20000 {
		checkCoverage(t, replies)
	}
}

// sameErrorCounts fails t unless the two servers, having been sent the same sequences, counted
// the same error replies: INFO's total_error_replies and errorstats, and each command's rejected
// and failed calls (its calls may differ: SCAN's cursors take the two servers different numbers
// of steps, and the harness pings Redis once more while it starts).
func sameErrorCounts(t *testing.T, redisAddr, velaAddr string) {
	t.Helper()
	total := regexp.MustCompile(`(?m)^total_error_replies:\d+`)
	errorCalls := regexp.MustCompile(`(?m)^(cmdstat_[^:]+):.*(rejected_calls=\d+,failed_calls=\d+)`)
	counts := func(addr string) (string, []string) {
		c := respclient.Dial(t, addr)
		defer c.Close()
		lines := []string{total.FindString(c.Do("INFO", "stats").Value.Text())}
		lines = append(lines, strings.Split(strings.TrimSpace(c.Do("INFO", "errorstats").Value.Text()), "\r\n")...)
		var cmds []string
		for _, m := range errorCalls.FindAllStringSubmatch(c.Do("INFO", "commandstats").Value.Text(), -1) {
			if !strings.HasSuffix(m[2], "rejected_calls=0,failed_calls=0") {
				cmds = append(cmds, m[1]+" "+m[2])
			}
		}
		sort.Strings(cmds)
		return strings.Join(lines, " "), cmds
	}
	wl, wc := counts(redisAddr)
	gl, gc := counts(velaAddr)
	if wl != gl {
		t.Errorf("error replies\n redis: %s\n  vela: %s", wl, gl)
	}
	if !slices.Equal(wc, gc) {
		t.Errorf("commands' rejected and failed calls\n redis: %v\n  vela: %v", wc, gc)
	}
	t.Logf("the same error replies counted: %s", gl)
}

// TestDifferentialRequirePass runs sequences against servers with a password: commands before
// AUTH, AUTH and HELLO AUTH variants, and the stricter unauthenticated request limits.
func TestDifferentialRequirePass(t *testing.T) {
	def := 4000
	if testing.Short() {
		def = 1000
	}
	seed, steps := seedAndSteps(t, def)
	t.Logf("seed %d, %d steps", seed, steps)
	const pass = "s3cret"
	rs := redistest.Start(t, "--databases", "1", "--proto-max-bulk-len", strconv.Itoa(maxBulk), "--requirepass", pass)
	cfg := testnode.Config()
	cfg.ProtoMaxBulkLen = maxBulk
	cfg.RequirePass = pass
	vela := testnode.Start(t, cfg)
	_, replies := runSequences(t, rs.Addr, vela.Addr(), seed, steps, 2, difftest.GenOptions{MaxBulkLen: maxBulk, Password: pass}, pass)
	if !t.Failed() && replies["get"]["error"] == 0 {
		t.Errorf("no command was refused before AUTH (%v)", replies["get"])
	}
}

// TestIncrByFloatDifferential focuses on INCRBYFLOAT, whose results depend on emulating Redis's
// x87 long double exactly: correctly rounded parsing, 64-bit addition and "%.17Lf" formatting.
// Each case sets a random number, adds another, then adds to the result again.
func TestIncrByFloatDifferential(t *testing.T) {
	seed, _ := seedAndSteps(t, 0)
	n := 3000
	if testing.Short() {
		n = 500
	}
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewSource(seed))
	number := func() string {
		var b strings.Builder
		if r.Intn(3) == 0 {
			b.WriteByte('-')
		}
		switch r.Intn(6) {
		case 0: // hexadecimal with a binary exponent
			fmt.Fprintf(&b, "0x%x.%xp%d", r.Intn(1<<20), r.Intn(1<<16), r.Intn(40)-20)
			return b.String()
		case 1: // many significant digits
			for i := 1 + r.Intn(25); i > 0; i-- {
				b.WriteByte(byte('0' + r.Intn(10)))
			}
			b.WriteByte('.')
			for i := r.Intn(25); i > 0; i-- {
				b.WriteByte(byte('0' + r.Intn(10)))
			}
			return b.String()
		case 2: // short decimals that are not binary fractions
			fmt.Fprintf(&b, "%d.%d", r.Intn(1000), r.Intn(100))
			return b.String()
		}
		fmt.Fprintf(&b, "%d.%de%d", 1+r.Intn(9), r.Intn(1_000_000), r.Intn(60)-30)
		return b.String()
	}
	rs := redistest.Start(t)
	vela := testnode.StartDefault(t)
	rc, vc := respclient.Dial(t, rs.Addr), respclient.Dial(t, vela.Addr())
	mismatches := 0
	for i := 0; i < n && mismatches < 10; i++ {
		a, b, c := number(), number(), number()
		for _, cmd := range [][]any{{"SET", "f", a}, {"INCRBYFLOAT", "f", b}, {"INCRBYFLOAT", "f", c}, {"GET", "f"}} {
			want, got := rc.Do(cmd...), vc.Do(cmd...)
			if string(want.Raw) != string(got.Raw) {
				mismatches++
				t.Errorf("seed %d: SET f %s; INCRBYFLOAT f %s; INCRBYFLOAT f %s: at %v redis %s, vela %s",
					seed, a, b, c, cmd, want.Value, got.Value)
				break
			}
		}
	}
}

// TestDifferentialStores runs the differential sequences against Vela on the disk store and on
// the redis store (backed by its own redis-server), so that every store answers exactly as Redis
// does.
func TestDifferentialStores(t *testing.T) {
	def := 6000
	if testing.Short() {
		def = 1500
	}
	for _, storeType := range []string{"disk", "redis", "redis-near"} {
		t.Run(storeType, func(t *testing.T) {
			seed, steps := seedAndSteps(t, def)
			t.Logf("seed %d, %d steps", seed, steps)
			rs := redistest.Start(t, "--databases", "1", "--proto-max-bulk-len", strconv.Itoa(maxBulk))
			cfg := onStore(t, storeType, "--proto-max-bulk-len", strconv.Itoa(maxBulk))
			cfg.ProtoMaxBulkLen = maxBulk
			vela := startOn(t, cfg)
			// On the redis store transactions run in Redis, which refuses FLUSHALL among them.
			// The disk store keeps no access times: OBJECT IDLETIME is refused there.
			gen := difftest.GenOptions{MaxBulkLen: maxBulk, NoFlushInMulti: cfg.Store.Type == "redis",
				NoIdleTime: storeType == "disk"}
			total, _ := runSequences(t, rs.Addr, vela.Addr(), seed, steps, 4, gen, "")
			t.Logf("%d commands sent to each server", total)
			checkNearUsed(t, vela)
		})
	}
}

// onStore is a test node's configuration on storeType: a fresh file for "disk", a redis-server
// of its own (started with backingArgs) for "redis", and the same with the near cache in front
// for "redis-near".
func onStore(t *testing.T, storeType string, backingArgs ...string) config.Config {
	cfg := testnode.Config()
	cfg.Store.Type = storeType
	switch storeType {
	case "disk":
		cfg.Store.DiskPath = t.TempDir() + "/vela.db"
	case "redis", "redis-near":
		cfg.Store.Type = "redis"
		cfg.Store.RedisURL = "redis://" + redistest.Start(t, backingArgs...).Addr + "/0"
		cfg.NearCache.Enabled = storeType == "redis-near"
	}
	return cfg
}

// checkNearUsed fails the test if vela has a near cache that answered no GET: the run would
// then say nothing about it.
func checkNearUsed(t *testing.T, vela *server.Server) {
	if vela.Node().NearCache() == nil {
		return
	}
	st := vela.Node().Stats()
	hits, misses := st.L1Hits.Load(), st.L1Misses.Load()
	t.Logf("near cache: %d hits, %d misses", hits, misses)
	if hits == 0 {
		t.Error("the near cache answered no GET")
	}
}

// startOn starts a test node on cfg and, when it has a near cache, waits until the cache serves
// (its invalidation channel is up), so that the run goes through it.
func startOn(t *testing.T, cfg config.Config) *server.Server {
	vela := testnode.Start(t, cfg)
	if nc := vela.Node().NearCache(); nc != nil {
		deadline := time.Now().Add(5 * time.Second)
		for !nc.Live() {
			if time.Now().After(deadline) {
				t.Fatal("the near cache did not go live")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return vela
}

// TestPipelinedDifferential sends seeded batches of commands on a few keys in one write each, to
// Redis and to Vela on every store, and compares the replies byte for byte: a store that lets
// pipelined writes overlap (the disk store shares their commits, the redis store their round
// trips) must still answer each command as if it ran alone, in order, reads seeing the writes
// before them.
func TestPipelinedDifferential(t *testing.T) {
	for _, storeType := range []string{"memory", "disk", "redis", "redis-near"} {
		t.Run(storeType, func(t *testing.T) {
			seed, _ := seedAndSteps(t, 0)
			t.Logf("seed %d (DIFFTEST_SEED replays it)", seed)
			rng := rand.New(rand.NewSource(seed))
			rs := redistest.Start(t, "--databases", "1")
			vela := startOn(t, onStore(t, storeType))
			rc, vc := respclient.Dial(t, rs.Addr), respclient.Dial(t, vela.Addr())
			for batch := range 20 {
				var cmds [][]any
				for range 500 {
					k, v := fmt.Sprintf("k%d", rng.Intn(4)), strconv.Itoa(rng.Intn(100))
					cmds = append(cmds, [][]any{
						{"SET", k, v}, {"SET", k, v, "NX"}, {"SET", k, v, "XX", "GET"}, {"GET", k},
						{"GET", k}, {"DEL", k}, {"INCR", k}, {"APPEND", k, v}, {"GETDEL", k},
						{"EXISTS", k}, {"MGET", k, "k0"}, {"SET", k, v, "PX", "100000"}, {"STRLEN", k},
						{"DEL", k, "k1", k, "k3"}, {"MSET", k, v, "k2", v},
					}[rng.Intn(15)])
				}
				for _, c := range []*respclient.Conn{rc, vc} {
					for _, cmd := range cmds {
						c.Send(cmd...)
					}
					if err := c.Flush(); err != nil {
						t.Fatal(err)
					}
				}
				for i, cmd := range cmds {
					_, w, werr := rc.Receive()
					_, g, gerr := vc.Receive()
					if werr != nil || gerr != nil {
						t.Fatalf("batch %d, command %d: %v / %v", batch, i, werr, gerr)
					}
					if string(w) != string(g) {
						t.Fatalf("batch %d, command %d %v: redis %q, vela %q", batch, i, cmd, w, g)
					}
				}
			}
			checkNearUsed(t, vela)
		})
	}
}

// TestKeyspaceHitsDifferential runs commands that read, write or skip keys against Redis and
// Vela (each store) and compares INFO's keyspace_hits and keyspace_misses after each: dashboards
// compute hit ratios from them, so Vela counts a hit or a miss for the same commands Redis does.
func TestKeyspaceHitsDifferential(t *testing.T) {
	steps := [][]any{
		{"SET", "a", "1"}, {"GET", "a"}, {"GET", "zz"}, {"MGET", "a", "zz", "a"},
		{"EXISTS", "a", "zz"}, {"TOUCH", "a", "zz"}, {"TYPE", "a"}, {"TYPE", "zz"},
		{"TTL", "a"}, {"PTTL", "zz"}, {"EXPIRETIME", "a"}, {"PEXPIRETIME", "zz"}, {"STRLEN", "a"},
		{"STRLEN", "zz"}, {"GETSET", "a", "2"}, {"GETSET", "g", "1"}, {"SET", "a", "3", "GET"},
		{"SET", "s", "1", "GET"}, {"SET", "a", "4", "NX", "GET"}, {"GETEX", "a", "PX", "100000"},
		{"GETEX", "zz"}, {"GETDEL", "g"}, {"GETDEL", "g"}, {"SETNX", "a", "5"}, {"APPEND", "a", "x"},
		{"INCR", "n"}, {"INCRBYFLOAT", "n", "1.5"}, {"EXPIRE", "a", "100"}, {"PERSIST", "a"},
		{"DEL", "a", "zz"}, {"MSET", "a", "1", "b", "2"}, {"MSETNX", "a", "1", "c", "3"},
		{"SET", "e", "1", "PX", "1"},
	}
	for _, storeType := range []string{"memory", "disk", "redis"} {
		t.Run(storeType, func(t *testing.T) {
			rs := redistest.Start(t, "--databases", "1")
			vela := testnode.Start(t, onStore(t, storeType))
			rc, vc := respclient.Dial(t, rs.Addr), respclient.Dial(t, vela.Addr())
			counts := func(c *respclient.Conn) string {
				info := c.Do("INFO", "stats").Value.Str
				var out []string
				for _, line := range strings.Split(info, "\r\n") {
					if strings.HasPrefix(line, "keyspace_hits:") || strings.HasPrefix(line, "keyspace_misses:") {
						out = append(out, line)
					}
				}
				return strings.Join(out, " ")
			}
			for _, cmd := range append(steps, []any{"GET", "e"}, []any{"EXISTS", "e"}) {
				if cmd[1] == "e" && cmd[0] != "SET" {
					time.Sleep(5 * time.Millisecond) // e has expired: a read of it is a miss
				}
				rc.Do(cmd...)
				vc.Do(cmd...)
				if want, got := counts(rc), counts(vc); want != got {
					t.Fatalf("after %v: redis %s, vela %s", cmd, want, got)
				}
			}
		})
	}
}

// TestCommandInfoDifferential compares, in RESP2 and RESP3, what COMMAND INFO and COMMAND DOCS
// say of every command of the contract with what Redis says: flags, arity, key positions, ACL
// categories, tips and key specifications (read by cluster clients and ACL tooling), summary,
// history and argument specifications (read by redis-cli for its hints). A container command
// (CLIENT, COMMAND, CONFIG) is compared without its subcommands: Vela has fewer, each compared
// on its own.
func TestCommandInfoDifferential(t *testing.T) {
	rs := redistest.Start(t)
	vela := testnode.StartDefault(t)
	// The documentation was captured from this version (commands/redisdocs.json); summaries, key
	// specs and histories change between Redis versions.
	if v := respclient.Dial(t, rs.Addr).Do("INFO", "server").Value.Str; !strings.Contains(v, "redis_version:"+commands.Version+"\r\n") {
		t.Skipf("COMMAND INFO and DOCS are Redis %s's; this redis-server is another version", commands.Version)
	}
	containers := map[string]bool{"client": true, "command": true, "config": true}
	for _, proto := range []string{"2", "3"} {
		rc, vc := respclient.Dial(t, rs.Addr), respclient.Dial(t, vela.Addr())
		rc.Do("HELLO", proto)
		vc.Do("HELLO", proto)
		describe := func(c *respclient.Conn, sub, name string) string {
			v := c.Do("COMMAND", sub, name).Value
			if len(v.Elems) == 0 || v.Elems[len(v.Elems)-1].Null {
				return fmt.Sprintf("no such command (%v)", v)
			}
			e := v.Elems[len(v.Elems)-1] // INFO: [entry]; DOCS: {name: map} or [name, map]
			if containers[name] && sub == "INFO" {
				e.Elems = e.Elems[:len(e.Elems)-1]
			}
			if containers[name] && sub == "DOCS" {
				e.Elems = e.Elems[:len(e.Elems)-2] // subcommands come last
			}
			return e.String()
		}
		for _, name := range strings.Fields(`ping echo quit select auth hello client command info
			config time dbsize flushdb flushall get set setnx setex psetex getset getdel getex mget
			mset msetnx incr decr incrby decrby incrbyfloat append strlen del unlink exists touch
			type expire pexpire expireat pexpireat ttl pttl expiretime pexpiretime persist keys
			scan client|setname client|getname client|id client|info client|list client|help command|count
			command|docs command|info command|list command|help config|get config|help`) {
			for _, sub := range []string{"INFO", "DOCS"} {
				if want, got := describe(rc, sub, name), describe(vc, sub, name); want != got {
					t.Errorf("RESP%s COMMAND %s %s:\n redis %s\n vela  %s", proto, sub, name, want, got)
				}
			}
		}
	}
}

// TestClientInfo compares CLIENT INFO's line with Redis's: the same fields in the same order (Vela
// adds Redis 7.2's lib-name and lib-ver at the end), describing the connection that asks.
func TestClientInfo(t *testing.T) {
	rs := redistest.Start(t)
	vela := testnode.StartDefault(t)
	fields := func(line string) []string {
		var out []string
		for _, f := range strings.Fields(line) {
			name, _, _ := strings.Cut(f, "=")
			out = append(out, name)
		}
		return out
	}
	for _, proto := range []string{"2", "3"} {
		rc, vc := respclient.Dial(t, rs.Addr), respclient.Dial(t, vela.Addr())
		rc.Do("HELLO", proto)
		vc.Do("HELLO", proto)
		want := fields(rc.Do("CLIENT", "INFO").Value.Str)
		line := vc.Do("CLIENT", "INFO").Value.Str
		got := fields(line)
		if len(got) < len(want) || strings.Join(got[:len(want)], " ") != strings.Join(want, " ") {
			t.Errorf("RESP%s CLIENT INFO fields:\n redis %v\n vela  %v", proto, want, got)
		}
		id := vc.Do("CLIENT", "ID").Value.Int
		if !strings.HasPrefix(line, fmt.Sprintf("id=%d ", id)) || !strings.Contains(line, " cmd=client|info ") || !strings.HasSuffix(line, "\n") {
			t.Errorf("RESP%s CLIENT INFO = %q, connection %d", proto, line, id)
		}
	}
}

// diffCluster starts a redis-server and a three-member partitioned cluster whose members keep
// near caches, for def seeded steps (2,000 with -short) or DIFFTEST_STEPS.
func diffCluster(t *testing.T, def int) (seed int64, steps int, rs *redistest.Server, nodes []*server.Server) {
	return diffClusterReplicas(t, def, 1)
}

// diffClusterReplicas is diffCluster keeping replicas copies of each key.
func diffClusterReplicas(t *testing.T, def, replicas int) (seed int64, steps int, rs *redistest.Server, nodes []*server.Server) {
	if testing.Short() {
		def = 2000
	}
	seed, steps = seedAndSteps(t, def)
	t.Logf("seed %d, %d steps", seed, steps)
	rs = redistest.Start(t, "--databases", "1", "--proto-max-bulk-len", strconv.Itoa(maxBulk))
	nodes = testnode.StartCluster(t, 3, func(_ int, cfg *config.Config) {
		cfg.NearCache.Enabled = true
		cfg.ProtoMaxBulkLen = maxBulk
		cfg.Cluster.Replicas = replicas
	})
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	return seed, steps, rs, nodes
}

// TestDifferentialCluster runs the seeded sequences through one member of a three-member
// partitioned cluster whose members keep near caches: keys live on all three, most commands are
// forwarded, GETs are answered from copies, and every reply must still be Redis's.
func TestDifferentialCluster(t *testing.T) {
	seed, steps, rs, nodes := diffCluster(t, 8000)
	// A cluster refuses transactions: its keys live on several members.
	gen := difftest.GenOptions{MaxBulkLen: maxBulk, NoTransactions: true, NoKeyPairs: true}
	total, _ := runSequences(t, rs.Addr, nodes[0].Addr(), seed, steps, 2, gen, "")
	t.Logf("%d commands sent to each server", total)
	checkNearUsed(t, nodes[0])
}

// TestDifferentialClusterTransactions runs seeded sequences with transactions through one
// member of a three-member partitioned cluster, every key carrying one hash tag so that one
// member holds them all, as Redis Cluster requires of a transaction: first a tag another member
// owns (WATCH and EXEC go there), then one the member asked owns (it runs them itself).
func TestDifferentialClusterTransactions(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			seed, steps, rs, nodes := diffClusterReplicas(t, 6000/replicas, replicas)
			cl := nodes[0].Cluster()
			total := transactionSequences(t, rs.Addr, nodes[0].Addr(), seed, steps, cl.Owner, cl.Name(), replicas > 1)
			t.Logf("%d commands sent to each server", total)
		})
	}
}

// transactionSequences runs seeded sequences with transactions through the member at addr,
// every key carrying one hash tag: first a tag another member owns (WATCH and EXEC go there),
// then one that member owns (it runs them itself). copies says that the members' writes are
// copied before they are acknowledged (WAIT counts them). It returns the commands sent.
func transactionSequences(t *testing.T, redisAddr, addr string, seed int64, steps int, owner func([]byte) string, self string, copies bool) int {
	var remote, local string
	for i := 0; remote == "" || local == ""; i++ {
		tag := "{t" + strconv.Itoa(i) + "}"
		if owner([]byte(tag)) == self {
			local = cmp.Or(local, tag)
		} else {
			remote = cmp.Or(remote, tag)
		}
	}
	total := 0
	for i, prefix := range []string{remote, local} {
		gen := difftest.GenOptions{MaxBulkLen: maxBulk, KeyPrefix: prefix, NoClusterWideInMulti: true, CopiesCounted: copies}
		sent, _ := runSequences(t, redisAddr, addr, seed+int64(10*i), steps/2, 2, gen, "")
		total += sent
	}
	return total
}

// TestDifferentialReplicatedTransactions runs seeded sequences with transactions through one
// member of a three-member replicated cluster, every key carrying one hash tag, decided by
// another member and then by the member asked. After each sequence every member must hold what
// Redis holds.
func TestDifferentialReplicatedTransactions(t *testing.T) {
	seed, steps, rs, nodes := diffReplicated(t, 4000)
	cl := nodes[0].Replicated()
	total := transactionSequences(t, rs.Addr, nodes[0].Addr(), seed, steps, cl.Owner, cl.Name(), true)
	sameAsRedis(t, rs.Addr, nodes)
	t.Logf("%d commands sent to each server", total)
}

// TestDifferentialReplicated runs the seeded sequences through two members of a three-member
// replicated cluster in turn: reads are answered locally, read-modify-write commands by each
// key's owner, and every reply must still be Redis's. After each sequence every member must
// hold what Redis holds.
func TestDifferentialReplicated(t *testing.T) {
	seed, steps, rs, nodes := diffReplicated(t, 8000)
	// A cluster refuses transactions: its keys live on several members. A replicated one
	// refuses MSETNX over several owners (CROSSSLOT): the test sends it one key.
	gen := difftest.GenOptions{MaxBulkLen: maxBulk, NoTransactions: true, OneKeyMSETNX: true, CopiesCounted: true, NoKeyPairs: true}
	total := 0
	for i, n := range nodes[:2] {
		sent, _ := runSequences(t, rs.Addr, n.Addr(), seed+int64(10*i), steps/2, 1, gen, "")
		total += sent
		sameAsRedis(t, rs.Addr, nodes)
	}
	t.Logf("%d commands sent to each server", total)
}

// diffReplicated starts a redis-server and a three-member replicated cluster, for def seeded
// steps (2,000 with -short) or DIFFTEST_STEPS.
func diffReplicated(t *testing.T, def int) (seed int64, steps int, rs *redistest.Server, nodes []*server.Server) {
	if testing.Short() {
		def = 2000
	}
	seed, steps = seedAndSteps(t, def)
	t.Logf("seed %d, %d steps", seed, steps)
	rs = redistest.Start(t, "--databases", "1", "--proto-max-bulk-len", strconv.Itoa(maxBulk))
	nodes = testnode.StartReplicated(t, 3, func(_ int, cfg *config.Config) { cfg.ProtoMaxBulkLen = maxBulk })
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	return seed, steps, rs, nodes
}

// sameAsRedis fails t unless every member holds the keys and values Redis holds (keys due to
// expire within a second are left out: they may go on one side first).
func sameAsRedis(t *testing.T, redisAddr string, members []*server.Server) {
	t.Helper()
	rc := respclient.Dial(t, redisAddr)
	defer rc.Close()
	want := map[string]string{}
	for _, k := range rc.Do("KEYS", "*").Value.Elems {
		if pttl := rc.Do("PTTL", k.Str).Value.Int; pttl >= 0 && pttl < 1000 {
			continue
		}
		want[k.Str] = rc.Do("GET", k.Str).Value.Str
	}
	t.Logf("comparing %d keys on %d members", len(want), len(members))
	for i, m := range members {
		mc := respclient.Dial(t, m.Addr())
		for k, v := range want {
			got := mc.Do("GET", k).Value
			if got.Str != v || got.IsNull() {
				t.Errorf("member %d: %q = %q (null %v), Redis has %q", i+1, k, got.Str, got.IsNull(), v)
			}
		}
		have := 0
		for _, k := range mc.Do("KEYS", "*").Value.Elems {
			if pttl := mc.Do("PTTL", k.Str).Value.Int; pttl >= 0 && pttl < 1000 {
				continue
			}
			have++
		}
		if have != len(want) {
			t.Errorf("member %d holds %d keys, Redis %d", i+1, have, len(want))
		}
		_ = mc.Close()
	}
}
