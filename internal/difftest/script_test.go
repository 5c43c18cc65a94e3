package difftest_test

import (
	"cmp"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// scriptCases are fixed scripts and script commands, on literal keys, whose replies must be
// Redis's byte for byte: Lua ↔ reply conversions, errors raised and caught, the sandbox, and
// the argument checks of EVAL, EVALSHA and SCRIPT.
var scriptCases = [][]string{
	{"SET", "s", "foo"}, {"SET", "a", "1"},
	{"EVAL", "return 1", "0"},
	{"EVAL", "return {1,2,{3,'x'},nil,5}", "0"},
	{"EVAL", "return {1,2,3.7,'a',true,false}", "0"},
	{"EVAL", "return {}", "0"},
	{"EVAL", "return 3.9", "0"}, {"EVAL", "return -3.9", "0"}, {"EVAL", "return true", "0"},
	{"EVAL", "return false", "0"}, {"EVAL", "return nil", "0"}, {"EVAL", "return tonumber('x')", "0"},
	{"EVAL", "return {ok='fine'}", "0"}, {"EVAL", "return {err='bad thing'}", "0"},
	{"EVAL", "return {err='-x'}", "0"}, {"EVAL", "return {err='a\\r\\nb'}", "0"},
	{"EVAL", "return redis.error_reply('My err')", "0"}, {"EVAL", "return redis.error_reply('-My err')", "0"},
	{"EVAL", "return redis.error_reply('oneword')", "0"},
	{"EVAL", "return redis.status_reply('STAT')", "0"}, {"EVAL", "return redis.status_reply('')", "0"},
	{"EVAL", "return redis.call('incr',KEYS[1])", "1", "a"},
	{"EVAL", "return redis.call('incr',KEYS[1])", "1", "s"},
	{"EVAL", "return redis.pcall('incr',KEYS[1])", "1", "s"},
	{"EVAL", "local ok, e = pcall(redis.call, 'incr', 's') return e", "0"},
	{"EVAL", "return redis.pcall('nosuch')", "0"}, {"EVAL", "return redis.call('nosuch')", "0"},
	{"EVAL", "return redis.pcall('get')", "0"}, {"EVAL", "return redis.call('get')", "0"},
	{"EVAL", "return redis.call()", "0"},
	{"EVAL", "return redis.call('set','a',{})", "0"},
	{"EVAL", "return redis.call('client','nosuch')", "0"},
	{"EVAL", "return redis.call('multi')", "0"}, {"EVAL", "return redis.call('eval','return 1','0')", "0"},
	{"EVAL", "return redis.call('config','get','maxmemory')", "0"},
	{"EVAL", "return redis.call('select','0')", "0"},
	{"EVAL", "return redis.call('get', 1.5)", "0"},
	{"EVAL", "return redis.call('set','n', 12345678901234)", "0"}, {"EVAL", "return redis.call('get','n')", "0"},
	{"EVAL", "return redis.call('set','n', 0.1)", "0"}, {"EVAL", "return redis.call('get','n')", "0"},
	{"EVAL", "return redis.call('set','n', 1e20)", "0"}, {"EVAL", "return redis.call('get','n')", "0"},
	{"EVAL", "return redis.call('mget','a','zz')", "0"},
	{"EVAL", "return type(redis.call('get','zzz'))", "0"},
	{"EVAL", "return redis.call('set','x','y').ok", "0"}, {"EVAL", "return redis.call('ping')", "0"},
	{"EVAL", "return redis.call('ping','x')", "0"}, {"EVAL", "return redis.call('ttl','nokey')", "0"},
	{"EVAL", "return KEYS[1]..ARGV[1]", "1", "k", "v"}, {"EVAL", "return #ARGV", "0", "a", "b", "c"},
	{"EVAL", "return ARGV", "0", "x", "y"},
	{"EVAL", "x = 1", "0"}, {"EVAL", "string.foo = 1", "0"}, {"EVAL", "return rawset(_G,'x',1)", "0"},
	{"EVAL", "return type(os)", "0"}, {"EVAL", "return type(io)", "0"}, {"EVAL", "return type(print)", "0"},
	{"EVAL", "return type(dofile)", "0"}, {"EVAL", "return type(require)", "0"},
	{"EVAL", "return type(loadstring)", "0"}, {"EVAL", "return type(coroutine)", "0"},
	{"EVAL", "return getmetatable('')", "0"},
	{"EVAL", "error('plain')", "0"}, {"EVAL", "error('noline', 0)", "0"}, {"EVAL", "error({err='XERR tbl'})", "0"},
	{"EVAL", "local x = 1\nlocal y = 2\nerror('third line')", "0"},
	{"EVAL", "return pcall(function() error({err='in'}) end)", "0"},
	{"EVAL", "return redis.sha1hex('')", "0"}, {"EVAL", "return redis.REPL_ALL", "0"},
	{"EVAL", "return redis.LOG_WARNING", "0"}, {"EVAL", "redis.log(redis.LOG_WARNING, 'hi') return 1", "0"},
	{"EVAL", "return _VERSION", "0"}, {"EVAL", "return tostring(0.1)", "0"}, {"EVAL", "return 1/0", "0"},
	{"EVAL", "return tonumber('0x10')", "0"}, {"EVAL", "return string.format('%d %s %5.2f', 3, 'a', 1.5)", "0"},
	{"EVAL", "return ('x'):rep(2)", "0"}, {"EVAL", "return string.rep('ab', 3)", "0"},
	{"EVAL", "return {bit.tobit(0xffffffff), bit.tobit(2^40+5), bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-1.5), " +
		"bit.bnot(0), bit.band(0xff, 0x0f, 0x3), bit.bor(1,2,4), bit.bxor(5,3), bit.lshift(1, 31), bit.lshift(1, 33), " +
		"bit.rshift(-1, 28), bit.arshift(-256, 4), bit.rol(0x12345678, 8), bit.ror(0x12345678, 8), bit.bswap(0x12345678), " +
		"bit.tohex(255), bit.tohex(-1, -4), bit.tohex(0x1234, 2), bit.tobit(-2^31), bit.tobit(2^31), bit.tohex(1, 0)}", "0"},
	{"EVAL", "bit.band = nil", "0"},
	{"EVAL", "return cjson.encode({1,2,'a',true,false})", "0"}, {"EVAL", "return cjson.encode({a=1})", "0"},
	{"EVAL", "return cjson.encode({})", "0"}, {"EVAL", "return cjson.encode('a/b\"c\\\\d\\n\\1\\127')", "0"},
	{"EVAL", "return cjson.encode(0.1)", "0"}, {"EVAL", "return cjson.encode(1e20)", "0"},
	{"EVAL", "return cjson.encode(123456789012345)", "0"}, {"EVAL", "return cjson.encode(cjson.null)", "0"},
	{"EVAL", "return cjson.encode({[1]=1,[2]=2,[4]=4})", "0"}, {"EVAL", "return cjson.encode({[1]=1,[20]=2})", "0"},
	{"EVAL", "return cjson.encode({[1.5]=1})", "0"}, {"EVAL", "return cjson.encode({{a={1,{b='x'}}}})", "0"},
	{"EVAL", "return cjson.encode(1/0)", "0"}, {"EVAL", "return cjson.encode(function() end)", "0"},
	{"EVAL", "return cjson.decode('[1,2,\"x\",null,true]')[3]", "0"},
	{"EVAL", "return cjson.decode('{\"a\":{\"b\":[1,2,3]}}').a.b[3]", "0"},
	{"EVAL", "return type(cjson.decode('[null]')[1])", "0"}, {"EVAL", "return cjson.decode('[null]')[1] == cjson.null", "0"},
	{"EVAL", "return cjson.decode('1.5')", "0"}, {"EVAL", "return cjson.decode('\"\\\\u00e9\"')", "0"},
	{"EVAL", "return cjson.encode(cjson.decode('{\"k\":[1,2,{\"x\":null}]}'))", "0"},
	{"EVAL", "return #cjson.decode('[]')", "0"}, {"EVAL", "return cjson.encode(cjson.decode('[]'))", "0"},
	{"EVAL", "cjson.encode = nil", "0"},
	{"EVAL", "return 1", "-1"}, {"EVAL", "return 1", "2", "a"}, {"EVAL", "return 1", "x"},
	{"EVAL", "return redis.call('get', KEYS[1])", "1"},
	{"EVAL_RO", "return redis.call('set','a','1')", "0"}, {"EVAL_RO", "return redis.pcall('set','a','1')", "0"},
	{"EVAL_RO", "return redis.call('get','a')", "0"},
	{"EVALSHA", "0123456789012345678901234567890123456789", "0"}, {"EVALSHA", "abc", "0"},
	{"SCRIPT", "LOAD", "return 'hi'"},
	{"EVALSHA", "2f31ba2bb6d6a0f42cc159d2e2dad55440778de3", "0"},
	{"EVALSHA", "2F31BA2BB6D6A0F42CC159D2E2DAD55440778DE3", "0"},
	{"EVALSHA_RO", "2f31ba2bb6d6a0f42cc159d2e2dad55440778de3", "0"},
	{"SCRIPT", "EXISTS", "2f31ba2bb6d6a0f42cc159d2e2dad55440778de3", "ffff"},
	{"SCRIPT", "EXISTS"}, {"SCRIPT", "LOAD"}, {"SCRIPT", "FLUSH", "bogus"}, {"SCRIPT", "KILL"},
	{"SCRIPT", "FLUSH"}, {"SCRIPT", "EXISTS", "2f31ba2bb6d6a0f42cc159d2e2dad55440778de3"},
	{"EVALSHA", "2f31ba2bb6d6a0f42cc159d2e2dad55440778de3", "0"},
	{"SCRIPT", "FLUSH", "ASYNC"}, {"SCRIPT", "NOSUCH"},
	{"MULTI"}, {"EVAL", "return redis.call('incr', KEYS[1])", "1", "a"}, {"SET", "a", "5"},
	{"EVAL", "return redis.call('incr', KEYS[1])", "1", "a"}, {"EXEC"},
	// EVALSHA queued in MULTI: a script known (loaded before, or by an EVAL queued earlier in
	// another transaction), and one unknown; redis-py's register_script in a pipeline does this.
	{"SCRIPT", "FLUSH"}, {"SCRIPT", "LOAD", "return redis.call('incrby', KEYS[1], ARGV[1])"},
	{"MULTI"}, {"EVALSHA", "65b45e1e1b8b36c8c3e885080b88ae484e64fde6", "1", "a", "2"},
	{"EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"}, {"GET", "a"},
	{"EVALSHA_RO", "65b45e1e1b8b36c8c3e885080b88ae484e64fde6", "1", "a", "2"}, {"EXEC"},
	{"MULTI"}, {"EVAL", "return redis.call('get', KEYS[1])", "1", "a"}, {"EXEC"},
	{"MULTI"}, {"EVALSHA", "4e6d8fc8bb01276962cce5371fa795a7763657ae", "1", "a"}, {"EXEC"},
}

// scriptTemplates are the bodies the seeded rounds run: the scripts applications send (locks,
// rate limiters, compare-and-set, counters) and calls of every kind of command, caught or not.
var scriptTemplates = []string{
	"return redis.call('{cmd}', KEYS[1], ARGV[1])",
	"return redis.pcall('{cmd}', KEYS[1], ARGV[1])",
	"return redis.pcall('{cmd}', KEYS[1])",
	"return redis.pcall('{cmd}', KEYS[1], ARGV[1], ARGV[2])",
	"if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', 100000) then return 1 else return 0 end",
	"local token = redis.call('get', KEYS[1]) if not token or token ~= ARGV[1] then return 0 end redis.call('del', KEYS[1]) return 1",
	"local c = redis.pcall('INCR', KEYS[1]) if type(c) == 'table' then return c end if c == 1 then redis.call('PEXPIRE', KEYS[1], 100000) end return {c, redis.call('PTTL', KEYS[1]) > 0}",
	"local v = redis.call('GET', KEYS[1]) if v == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2]) end return v",
	"local v = redis.call('GET', KEYS[1]) if v then return redis.call('SET', KEYS[2], v .. ARGV[1]) else return redis.pcall('INCRBY', KEYS[2], ARGV[1]) end",
	"return redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])",
	"return {redis.call('EXISTS', KEYS[1], KEYS[2]), redis.call('TYPE', KEYS[1]).ok, tonumber(ARGV[1]), #ARGV}",
	"redis.call('MSET', KEYS[1], ARGV[1], KEYS[2], ARGV[2]) return redis.call('STRLEN', KEYS[1]) + redis.call('STRLEN', KEYS[2])",
	"local n = tonumber(ARGV[1]) if not n then return redis.error_reply('not a number: ' .. ARGV[1]) end return redis.call('INCRBYFLOAT', KEYS[1], n)",
	"local r = {} for i, k in ipairs(KEYS) do r[i] = redis.call('GET', k) or 'none' end return r",
	"return redis.call('DEL', unpack(KEYS))",
	"redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GETRANGE', KEYS[1], 0, 2)",
	"return redis.call('EXPIRE', KEYS[1], 1000, 'NX')",
	"return redis.call('SET', KEYS[1], ARGV[1], 'GET')",
	"return string.len(ARGV[1]) .. ':' .. string.upper(ARGV[1])",
	"local t = {} for w in string.gmatch(ARGV[1] .. ' ' .. (ARGV[2] or ''), '%S+') do table.insert(t, w) end return t",
	"return redis.call('{cmd}')",
}

// scriptCommands are what {cmd} becomes in a template: commands a script may call, some with
// arguments they refuse.
var scriptCommands = []string{
	"GET", "SET", "INCR", "INCRBY", "DECRBY", "APPEND", "STRLEN", "DEL", "EXISTS", "GETDEL",
	"GETSET", "SETNX", "TTL", "PERSIST", "EXPIRE", "INCRBYFLOAT", "TYPE", "MGET", "GETEX", "PING",
	"ECHO", "TOUCH", "UNLINK", "SETRANGE", "GETRANGE", "NOSUCH", "MULTI",
}

var scriptArgValues = []string{"1", "10", "-3", "x", "2.5", "", "abc def", "\x00\xff", "9223372036854775807", "tok"}

// multiKey are the commands of scriptCommands that take their other arguments as keys: a
// cluster run leaves them out, since a script may only name keys that live together.
var multiKey = map[string]bool{"DEL": true, "EXISTS": true, "MGET": true, "TOUCH": true, "UNLINK": true}

// scriptRound returns one seeded script command on keys.
func scriptRound(r *rand.Rand, keys []string, cluster bool) []string {
	body := scriptTemplates[r.Intn(len(scriptTemplates))]
	cmd := scriptCommands[r.Intn(len(scriptCommands))]
	for cluster && multiKey[cmd] {
		cmd = scriptCommands[r.Intn(len(scriptCommands))]
	}
	body = strings.ReplaceAll(body, "{cmd}", cmd)
	nkeys := 3
	if r.Intn(10) == 0 {
		nkeys = r.Intn(3)
	}
	args := []string{"EVAL", body, strconv.Itoa(nkeys)}
	switch r.Intn(8) {
	case 0:
		args[0] = "EVALSHA"
		args[1] = shaHex(body)
	case 1:
		args[0] = "EVAL_RO"
	}
	perm := r.Perm(len(keys))
	for i := range nkeys {
		args = append(args, keys[perm[i%len(perm)]])
	}
	for range 1 + r.Intn(3) {
		args = append(args, scriptArgValues[r.Intn(len(scriptArgValues))])
	}
	return args
}

// runScripts sends the fixed cases (when cases is set) and steps seeded script commands on
// keys, with GETs of the keys between them, to Redis and to Vela and fails at the first reply
// that differs. It returns the commands
// sent.
func runScripts(t *testing.T, redisAddr, velaAddr string, seed int64, steps int, keys []string, cases bool) int {
	t.Helper()
	rc, vc := respclient.Dial(t, redisAddr), respclient.Dial(t, velaAddr)
	defer rc.Close()
	defer vc.Close()
	var history []string
	sent := 0
	do := func(args []string) {
		t.Helper()
		cmd := make([]any, len(args))
		for i, s := range args {
			cmd[i] = s
		}
		w, g := rc.Do(cmd...).Raw, vc.Do(cmd...).Raw
		sent++
		history = append(history, fmt.Sprintf("%q", args))
		if len(history) > 20 {
			history = history[1:]
		}
		if string(w) != string(g) {
			t.Fatalf("%q:\nredis %q\nvela  %q\nlast commands:\n%s", args, w, g, strings.Join(history, "\n"))
		}
	}
	if cases {
		for _, c := range scriptCases {
			do(c)
		}
	}
	r := rand.New(rand.NewSource(seed))
	for range steps {
		if r.Intn(3) == 0 { // a plain read between scripts: a near cache must not answer a stale copy
			do([]string{"GET", keys[r.Intn(len(keys))]})
		}
		do(scriptRound(r, keys, !cases))
		if r.Intn(50) == 0 {
			do([]string{"SCRIPT", "FLUSH"})
		}
	}
	mget := append([]string{"MGET"}, keys...)
	do(mget)
	return sent
}

// TestScriptDifferential runs the fixed script cases and seeded scripts against Redis and Vela
// on every store, replies compared byte for byte, and the error replies both counted; on the
// redis store the scripts run in the backing Redis.
func TestScriptDifferential(t *testing.T) {
	for _, storeType := range []string{"memory", "disk", "redis", "redis-near"} {
		t.Run(storeType, func(t *testing.T) {
			seed, steps := seedAndSteps(t, 3000)
			t.Logf("seed %d, %d steps", seed, steps)
			rs := redistest.Start(t, "--databases", "1")
			vela := startOn(t, onStore(t, storeType))
			sent := runScripts(t, rs.Addr, vela.Addr(), seed, steps, []string{"a", "b", "c", "d"}, true)
			t.Logf("%d commands sent to each server", sent)
			checkNearUsed(t, vela)
			if storeType == "memory" || storeType == "disk" {
				// On the redis store the scripts run in Redis, whose INFO counts their errors.
				sameErrorCounts(t, rs.Addr, vela.Addr())
			}
		})
	}
}

// TestScriptDifferentialCluster runs seeded scripts through one member of three-member
// partitioned (one and two copies of each key) and replicated clusters, every key carrying one
// hash tag as Redis Cluster requires of a script's keys: first a tag another member owns (the
// script runs there), then one the member asked owns.
func TestScriptDifferentialCluster(t *testing.T) {
	for _, kind := range []string{"partitioned", "partitioned-replicas=2", "replicated"} {
		t.Run(kind, func(t *testing.T) {
			seed, steps := seedAndSteps(t, 2000)
			t.Logf("seed %d, %d steps", seed, steps)
			rs := redistest.Start(t, "--databases", "1")
			var owner func([]byte) string
			var self, addr string
			if kind == "replicated" {
				nodes := testnode.StartReplicated(t, 3, nil)
				testnode.WaitReplicated(t, 10e9, nodes...)
				owner, self, addr = nodes[0].Replicated().Owner, nodes[0].Replicated().Name(), nodes[0].Addr()
			} else {
				nodes := testnode.StartCluster(t, 3, func(_ int, cfg *config.Config) {
					cfg.NearCache.Enabled = true
					if kind != "partitioned" {
						cfg.Cluster.Replicas = 2
					}
				})
				testnode.WaitConverged(t, 10e9, nodes...)
				owner, self, addr = nodes[0].Cluster().Owner, nodes[0].Cluster().Name(), nodes[0].Addr()
			}
			var remote, local string
			for i := 0; remote == "" || local == ""; i++ {
				tag := "{s" + strconv.Itoa(i) + "}"
				if owner([]byte(tag)) == self {
					local = cmp.Or(local, tag)
				} else {
					remote = cmp.Or(remote, tag)
				}
			}
			sent := 0
			for i, tag := range []string{remote, local} {
				keys := []string{tag + "a", tag + "b", tag + "c", tag + "d"}
				sent += runScripts(t, rs.Addr, addr, seed+int64(i), steps/2, keys, false)
			}
			t.Logf("%d commands sent to each server", sent)
		})
	}
}

// shaHex is a script's SHA1, its name for EVALSHA.
func shaHex(body string) string {
	sum := sha1.Sum([]byte(body))
	return hex.EncodeToString(sum[:])
}

// TestScriptPlacementInCluster: in a partitioned cluster a script's declared keys must live on
// one member (else CROSSSLOT, as in Redis Cluster), a key it names without declaring must live
// where it runs, and each member keeps its own script cache (EVALSHA of a script loaded
// through another member answers NOSCRIPT until this one has seen it).
func TestScriptPlacementInCluster(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10e9, nodes...)
	cl := nodes[0].Cluster()
	var here, there []string // keys node 0 owns, and keys another member owns
	for i := 0; len(here) < 1 || len(there) < 1; i++ {
		k := "k" + strconv.Itoa(i)
		if cl.Owner([]byte(k)) == cl.Name() {
			here = append(here, k)
		} else {
			there = append(there, k)
		}
	}
	c := respclient.Dial(t, nodes[0].Addr())
	defer c.Close()
	expect := func(want string, args ...any) {
		t.Helper()
		if got := string(c.Do(args...).Raw); got != want {
			t.Fatalf("%q: %q, want %q", args, got, want)
		}
	}
	set := "return redis.call('SET', KEYS[1], ARGV[1])"
	expect("-CROSSSLOT Keys in request don't hash to the same slot\r\n", "EVAL", set, "2", here[0], there[0], "v")
	expect("+OK\r\n", "EVAL", set, "1", there[0], "v") // runs on the owner
	expect("+OK\r\n", "EVAL", set, "1", here[0], "w")  // runs here
	expect("-ERR Script attempted to access a non local key in a cluster node script: "+shaHex("return redis.call('GET', ARGV[1])")+
		", on @user_script:1.\r\n", "EVAL", "return redis.call('GET', ARGV[1])", "0", there[0])
	expect("$1\r\nw\r\n", "EVAL", "return redis.call('GET', ARGV[1])", "0", here[0])
	sha := shaHex("return 'loaded'")
	other := respclient.Dial(t, nodes[1].Addr())
	defer other.Close()
	if got := string(other.Do("SCRIPT", "LOAD", "return 'loaded'").Raw); got != "$40\r\n"+sha+"\r\n" {
		t.Fatalf("SCRIPT LOAD on node 1: %q", got)
	}
	expect("-NOSCRIPT No matching script. Please use EVAL.\r\n", "EVALSHA", sha, "0")
	expect("$6\r\nloaded\r\n", "EVAL", "return 'loaded'", "0")
	expect("$6\r\nloaded\r\n", "EVALSHA", sha, "1", there[0]) // known here now: its body goes to the owner
}
