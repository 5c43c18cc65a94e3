package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/testnode"
)

// scriptStoreConfig is a test node's configuration on store: the memory store ("memory", its
// default event loops; "memory-goroutines", a goroutine per client), a fresh file ("disk"), or
// a redis-server of its own from redistest ("redis").
func scriptStoreConfig(t *testing.T, store string) config.Config {
	t.Helper()
	cfg := testnode.Config()
	switch store {
	case "memory":
	case "memory-goroutines":
		cfg.EventLoops = 0
	case "disk":
		cfg.Store.Type = "disk"
		cfg.Store.DiskPath = filepath.Join(t.TempDir(), "vela.db")
	case "redis":
		cfg.Store.Type = "redis"
		cfg.Store.RedisURL = "redis://" + redistest.Start(t).Addr + "/0"
	default:
		t.Fatalf("unknown store %q", store)
	}
	return cfg
}

// scriptSent records the commands a go-redis client sends, with the raw error each got, as
// "evalsha" or "evalsha NOSCRIPT No matching script…": the client normalizes some errors
// afterwards (NOSCRIPT becomes redis.ErrNoScript), the hook sees the server's text.
type scriptSent struct {
	mu   sync.Mutex
	cmds []string
}

func (h *scriptSent) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *scriptSent) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		entry := strings.ToLower(cmd.Name())
		if err != nil && !errors.Is(err, redis.Nil) {
			entry += " " + err.Error()
		}
		h.mu.Lock()
		h.cmds = append(h.cmds, entry)
		h.mu.Unlock()
		return err
	}
}

func (h *scriptSent) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// take returns the commands recorded since the last call, and forgets them.
func (h *scriptSent) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.cmds
	h.cmds = nil
	return out
}

// sha1Hex is a script's name for EVALSHA, computed here independently of Vela and go-redis.
func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestGoRedisScripts drives Vela's scripting through go-redis v9, over RESP2 and RESP3, on the
// memory, disk and redis stores (the last backed by a redis-server of its own, which then runs
// the scripts). It proves that:
//   - redis.NewScript(...).Run on a fresh node gets NOSCRIPT for its EVALSHA and falls back to
//     EVAL, and that a second Run is served by EVALSHA alone (EVAL cached the script);
//   - the replies convert as Redis's do: an integer, a bulk string, nil (redis.Nil), and a
//     nested array, with KEYS and ARGV passed through and the script's writes visible after;
//   - SCRIPT LOAD returns the body's SHA1, SCRIPT EXISTS tells loaded from unknown, EVALSHA
//     runs a loaded script, SCRIPT FLUSH forgets it (EVALSHA then answers NOSCRIPT);
//   - EVAL_RO and EVALSHA_RO (also through RunRO) read, and EVAL_RO refuses a write with
//     Redis's error, leaving the key as it was;
//   - an error raised by redis.call inside a script (INCR of a non-integer) reaches the client
//     as an error reply with Redis's text, and the script stops there.
func TestGoRedisScripts(t *testing.T) {
	for _, store := range []string{"memory", "disk", "redis"} {
		t.Run(store, func(t *testing.T) {
			addr := testnode.Start(t, scriptStoreConfig(t, store)).Addr()
			for _, proto := range []int{2, 3} {
				t.Run(fmt.Sprintf("resp%d", proto), func(t *testing.T) {
					goRedisScripts(t, addr, proto)
				})
			}
		})
	}
}

// goRedisScripts runs TestGoRedisScripts's checks through one client of addr speaking RESP proto.
func goRedisScripts(t *testing.T, addr string, proto int) {
	sent := &scriptSent{}
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: proto, MaxRetries: -1})
	defer c.Close()
	c.AddHook(sent)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}

	// Run on a node that does not know the script: EVALSHA, NOSCRIPT, EVAL.
	const body = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1]) .. ARGV[2]"
	s := redis.NewScript(body)
	if s.Hash() != sha1Hex(body) {
		t.Fatalf("go-redis hash %s, want %s", s.Hash(), sha1Hex(body))
	}
	sent.take()
	got, err := s.Run(ctx, c, []string{"sk"}, "v1", "-tail").Result()
	if err != nil || got != "v1-tail" {
		t.Fatalf("first Run = %#v, %v; want \"v1-tail\"", got, err)
	}
	cmds := sent.take()
	if len(cmds) != 2 || !strings.HasPrefix(cmds[0], "evalsha NOSCRIPT ") || cmds[1] != "eval" {
		t.Fatalf("first Run sent %q, want [evalsha answered NOSCRIPT, eval]", cmds)
	}
	if v, err := c.Get(ctx, "sk").Result(); err != nil || v != "v1" {
		t.Fatalf("GET sk after the script = %q, %v; want v1", v, err)
	}
	sent.take()
	// Run again: EVALSHA alone, the script cached by the EVAL.
	got, err = s.Run(ctx, c, []string{"sk"}, "v2", "!").Result()
	if err != nil || got != "v2!" {
		t.Fatalf("second Run = %#v, %v; want \"v2!\"", got, err)
	}
	if cmds := sent.take(); len(cmds) != 1 || cmds[0] != "evalsha" {
		t.Fatalf("second Run sent %q, want [evalsha] alone", cmds)
	}

	// Reply conversions, each through Run (EVALSHA after EVAL) and read back exactly.
	for _, tc := range []struct {
		body string
		keys []string
		args []any
		want any // nil: redis.Nil
	}{
		{"return 42", nil, nil, int64(42)},
		{"return -7.9", nil, nil, int64(-7)}, // Lua numbers are truncated to integers
		{"return tonumber(ARGV[1]) + 1", nil, []any{41}, int64(42)},
		{"return 'hello'", nil, nil, "hello"},
		{"return ARGV[1]", nil, []any{"a\r\nb\x00c"}, "a\r\nb\x00c"},
		{"return redis.call('GET', KEYS[1])", []string{"missing"}, nil, nil},
		{"return nil", nil, nil, nil},
		{"return {1, 'two', {3, 'four'}, KEYS[1], ARGV[1]}", []string{"k"}, []any{"a"},
			[]any{int64(1), "two", []any{int64(3), "four"}, "k", "a"}},
		{"return {1, 2, nil, 4}", nil, nil, []any{int64(1), int64(2)}}, // an array stops at its first nil
		{"return {}", nil, nil, []any{}},
		// A nil bulk inside a reply is false in Lua and nil again in the script's reply.
		{"redis.call('MSET', KEYS[1], 'a', KEYS[2], 'b') return redis.call('MGET', KEYS[1], 'nokey', KEYS[2])",
			[]string{"m1", "m2"}, nil, []any{"a", nil, "b"}},
	} {
		for run := 1; run <= 2; run++ {
			got, err := redis.NewScript(tc.body).Run(ctx, c, tc.keys, tc.args...).Result()
			switch {
			case tc.want == nil:
				if !errors.Is(err, redis.Nil) {
					t.Errorf("run %d of %q = %#v, %v; want redis.Nil", run, tc.body, got, err)
				}
			case err != nil || !reflect.DeepEqual(got, tc.want):
				t.Errorf("run %d of %q = %#v, %v; want %#v", run, tc.body, got, err, tc.want)
			}
		}
		if cmds := sent.take(); len(cmds) != 3 || !strings.HasPrefix(cmds[0], "evalsha NOSCRIPT ") ||
			cmds[1] != "eval" || cmds[2] != "evalsha" {
			t.Errorf("two Runs of %q sent %q, want [evalsha answered NOSCRIPT, eval, evalsha]", tc.body, cmds)
		}
	}

	// SCRIPT LOAD, EXISTS, EVALSHA, FLUSH.
	const loaded = "return {KEYS[1], ARGV[1], #KEYS, #ARGV}"
	sha, err := c.ScriptLoad(ctx, loaded).Result()
	if err != nil || sha != sha1Hex(loaded) {
		t.Fatalf("SCRIPT LOAD = %q, %v; want %s", sha, err, sha1Hex(loaded))
	}
	unknown := sha1Hex("return 'never loaded'")
	if ex, err := c.ScriptExists(ctx, sha, strings.ToUpper(sha), unknown).Result(); err != nil ||
		!reflect.DeepEqual(ex, []bool{true, true, false}) {
		t.Fatalf("SCRIPT EXISTS = %v, %v; want [true true false]", ex, err)
	}
	if got, err := c.EvalSha(ctx, sha, []string{"k1"}, "a1", "a2").Result(); err != nil ||
		!reflect.DeepEqual(got, []any{"k1", "a1", int64(1), int64(2)}) {
		t.Fatalf("EVALSHA of the loaded script = %#v, %v", got, err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	if ex, err := c.ScriptExists(ctx, sha, s.Hash()).Result(); err != nil || !reflect.DeepEqual(ex, []bool{false, false}) {
		t.Fatalf("SCRIPT EXISTS after SCRIPT FLUSH = %v, %v; want [false false]", ex, err)
	}
	sent.take()
	if got, err := c.EvalSha(ctx, sha, []string{"k1"}).Result(); !errors.Is(err, redis.ErrNoScript) {
		t.Fatalf("EVALSHA after SCRIPT FLUSH = %#v, %v; want NOSCRIPT", got, err)
	}
	if cmds := sent.take(); len(cmds) != 1 || cmds[0] != "evalsha NOSCRIPT No matching script. Please use EVAL." {
		t.Fatalf("EVALSHA after SCRIPT FLUSH: the server answered %q, want Redis's NOSCRIPT text", cmds)
	}
	// The flushed script runs again after Run's fallback.
	if got, err := s.Run(ctx, c, []string{"sk"}, "v3", "").Result(); err != nil || got != "v3" {
		t.Fatalf("Run after SCRIPT FLUSH = %#v, %v; want \"v3\"", got, err)
	}

	// EVAL_RO and EVALSHA_RO: reads run, writes are refused and change nothing.
	const read = "return redis.call('GET', KEYS[1])"
	if got, err := c.EvalRO(ctx, read, []string{"sk"}).Result(); err != nil || got != "v3" {
		t.Fatalf("EVAL_RO read = %#v, %v; want \"v3\"", got, err)
	}
	if got, err := redis.NewScript(read).RunRO(ctx, c, []string{"sk"}).Result(); err != nil || got != "v3" {
		t.Fatalf("RunRO (EVALSHA_RO, then EVAL_RO) = %#v, %v; want \"v3\"", got, err)
	}
	if got, err := c.EvalShaRO(ctx, sha1Hex(read), []string{"sk"}).Result(); err != nil || got != "v3" {
		t.Fatalf("EVALSHA_RO of a cached script = %#v, %v; want \"v3\"", got, err)
	}
	const write = "return redis.call('SET', KEYS[1], 'changed')"
	if got, err := c.EvalRO(ctx, write, []string{"sk"}).Result(); err == nil ||
		!strings.HasPrefix(err.Error(), "ERR Write commands are not allowed from read-only scripts.") {
		t.Fatalf("EVAL_RO write = %#v, %v; want ERR Write commands are not allowed from read-only scripts.", got, err)
	}
	if v, err := c.Get(ctx, "sk").Result(); err != nil || v != "v3" {
		t.Fatalf("GET sk after the refused EVAL_RO = %q, %v; want v3", v, err)
	}

	// An error of redis.call stops the script and is the reply.
	if err := c.Set(ctx, "notint", "abc", 0).Err(); err != nil {
		t.Fatal(err)
	}
	const failing = "redis.call('SET', KEYS[2], 'before') local v = redis.call('incr', KEYS[1]) " +
		"redis.call('SET', KEYS[2], 'after') return v"
	for run := 1; run <= 2; run++ { // EVAL, then EVALSHA
		got, err := redis.NewScript(failing).Run(ctx, c, []string{"notint", "marker"}).Result()
		var rerr redis.Error
		if err == nil || !errors.As(err, &rerr) ||
			!strings.HasPrefix(err.Error(), "ERR value is not an integer or out of range") {
			t.Fatalf("run %d of INCR on a non-integer = %#v, %v; want an error reply starting "+
				"\"ERR value is not an integer or out of range\"", run, got, err)
		}
		t.Logf("run %d: %v", run, err)
	}
	if v, err := c.MGet(ctx, "notint", "marker").Result(); err != nil || !reflect.DeepEqual(v, []any{"abc", "before"}) {
		t.Fatalf("MGET notint marker after the failed script = %#v, %v; want [abc before]", v, err)
	}
	// redis.pcall returns the same error to the script, which goes on.
	if got, err := c.Eval(ctx, "local r = redis.pcall('incr', KEYS[1]) return r.err", []string{"notint"}).Result(); err != nil ||
		got != "ERR value is not an integer or out of range" {
		t.Fatalf("redis.pcall of INCR on a non-integer = %#v, %v", got, err)
	}
	// The connection still serves.
	if v, err := c.Ping(ctx).Result(); err != nil || v != "PONG" {
		t.Fatalf("PING after the scripts = %q, %v", v, err)
	}
}

// pythonWithRedis returns a python3 interpreter that can import redis-py: python3 on PATH, or
// the system's /usr/bin/python3 (Debian's python3-redis installs there, which a pyenv python3
// first on PATH does not see). Without one the test is skipped, or fails under CI=true.
func pythonWithRedis(t *testing.T) string {
	t.Helper()
	var tried []string
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append([]string{p}, candidates...)
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		out, err := exec.Command(p, "-c", "import redis; print(redis.__version__)").CombinedOutput()
		if err == nil {
			t.Logf("%s with redis-py %s", p, strings.TrimSpace(string(out)))
			return p
		}
		tried = append(tried, fmt.Sprintf("%s: %v: %s", p, err, bytes.TrimSpace(out)))
	}
	msg := "no python3 with the redis module (Debian: python3-redis; pip: redis)"
	if len(tried) > 0 {
		msg += ": " + strings.Join(tried, "; ")
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; required under CI=true", msg)
	}
	t.Skip(msg + "; install it to run this test")
	return ""
}

// redisPyLock is run by TestRedisPyLock with Vela's host and port. It exits non-zero with the
// reason on stderr at the first check that fails, and prints OK when all pass.
const redisPyLock = `
import sys
import redis
from redis.exceptions import LockError, LockNotOwnedError

host, port = sys.argv[1], int(sys.argv[2])
r = redis.Redis(host=host, port=port, socket_timeout=10)
r.script_flush()  # redis-py's Lua scripts start unknown: EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA
r.delete("name")

def check(cond, what):
    if not cond:
        sys.stderr.write("FAIL: %s\n" % what)
        sys.exit(1)

# One lock: acquire, extend, release.
lock = r.lock("name", timeout=10)
check(lock.acquire(blocking_timeout=5) is True, "acquire")
token = lock.local.token
check(r.exists("name") == 1, "the key exists while the lock is held")
check(r.get("name") == token, "the key holds the lock's token: %r != %r" % (r.get("name"), token))
check(lock.locked() and lock.owned(), "locked() and owned() while held")
ttl = r.pttl("name")
check(0 < ttl <= 10000, "PTTL %d after acquire, want (0, 10000]" % ttl)
check(lock.extend(5) is True, "extend(5)")
ttl = r.pttl("name")
check(10000 < ttl <= 15000, "PTTL %d after extend(5), want (10000, 15000]" % ttl)
check(lock.extend(20, replace_ttl=True) is True, "extend(20, replace_ttl=True)")
ttl = r.pttl("name")
check(15000 < ttl <= 20000, "PTTL %d after extend(20, replace_ttl=True), want (15000, 20000]" % ttl)
check(lock.reacquire() is True, "reacquire()")
ttl = r.pttl("name")
check(0 < ttl <= 10000, "PTTL %d after reacquire(), want (0, 10000]" % ttl)
check(lock.release() is None, "release")
check(r.exists("name") == 0, "the key is gone after release")
check(not lock.locked(), "locked() after release")
for s in (lock.lua_release, lock.lua_extend, lock.lua_reacquire):
    check(r.script_exists(s.sha) == [True], "redis-py's script %s is cached after it ran" % s.sha)

# Two locks of one name: the second cannot take it while the first holds it.
first = r.lock("name", timeout=10)
second = r.lock("name", timeout=10)
check(first.acquire(blocking=False) is True, "first acquire")
check(second.acquire(blocking=False) is False, "second acquire(blocking=False) while the first holds it")
check(second.acquire(blocking_timeout=0.2) is False, "second acquire(blocking_timeout=0.2) while the first holds it")
check(r.get("name") == first.local.token, "the first lock's token stays")
try:
    second.release()
    check(False, "releasing a lock never acquired raised nothing")
except LockError:
    pass
check(r.get("name") == first.local.token, "the first lock's token stays after the second's release")
first.release()
check(second.acquire(blocking=False) is True, "second acquire after the first's release")
second.release()
check(r.exists("name") == 0, "the key is gone after the second's release")

# A lock whose token was changed under it is no longer its holder's.
lock = r.lock("name", timeout=10)
check(lock.acquire(blocking=False) is True, "acquire before the token changes")
r.set("name", "someone-else", px=10000)
# release last: redis-py forgets the token before it runs the release script.
for what, op in (("extend", lambda: lock.extend(5)), ("reacquire", lock.reacquire), ("release", lock.release)):
    try:
        op()
        check(False, "%s of a lock whose token changed raised nothing" % what)
    except LockNotOwnedError:
        pass
check(r.get("name") == b"someone-else", "the new holder's token stays: %r" % r.get("name"))
ttl = r.pttl("name")
check(0 < ttl <= 10000, "PTTL %d of the new holder's key, untouched by extend/reacquire" % ttl)
r.delete("name")
print("OK")
`

// TestRedisPyLock runs redis-py's Lock against Vela on the memory store. Its acquire is SET NX
// PX, but release, extend and reacquire are Lua scripts run with EVALSHA (after NOSCRIPT and
// SCRIPT LOAD on a fresh cache), so this proves that a real client's scripts behave on Vela as
// on Redis: a held lock's key exists with its token and TTL, extend adds to the TTL, release
// deletes the key; a second lock of the same name cannot be acquired while the first is held
// and can after its release; and a holder whose token was replaced cannot release, extend or
// reacquire (LockNotOwnedError), leaving the new token and its TTL alone.
func TestRedisPyLock(t *testing.T) {
	python := pythonWithRedis(t)
	srv := testnode.StartDefault(t)
	host, port, err := net.SplitHostPort(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "lock.py")
	if err := os.WriteFile(file, []byte(redisPyLock), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, file, host, port)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err != nil || strings.TrimSpace(stdout.String()) != "OK" {
		t.Fatalf("python lock.py: %v (exit code %d)\nstdout: %s\nstderr: %s",
			err, cmd.ProcessState.ExitCode(), stdout.Bytes(), stderr.Bytes())
	}
}

// TestScriptsAreAtomic has 8 go-redis clients each run a read-modify-write script 500 times on
// one key (GET, then SET of the value plus one): only if no script's commands interleave with
// another's does each run see a different value, so the runs must return exactly 1…N and the
// key end at N. On the memory store (event loops, and a goroutine per client) and the
// disk store (100 runs each there: every script is a commit, about 4 ms).
func TestScriptsAreAtomic(t *testing.T) {
	const clients = 8
	const body = "local v = tonumber(redis.call('GET', KEYS[1]) or '0') redis.call('SET', KEYS[1], v + 1) return v + 1"
	for _, store := range []string{"memory", "memory-goroutines", "disk"} {
		t.Run(store, func(t *testing.T) {
			each := 500
			if store == "disk" {
				each = 100
			}
			addr := testnode.Start(t, scriptStoreConfig(t, store)).Addr()
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			script := redis.NewScript(body)
			results := make([][]int64, clients)
			errs := make(chan error, clients)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, PoolSize: 1})
					defer c.Close()
					<-start
					for range each {
						v, err := script.Run(ctx, c, []string{"counter"}).Int64()
						if err != nil {
							errs <- fmt.Errorf("client %d: %w", i, err)
							return
						}
						results[i] = append(results[i], v)
					}
				}()
			}
			began := time.Now()
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if t.Failed() {
				return
			}
			t.Logf("%d script runs in %v", clients*each, time.Since(began).Round(time.Millisecond))
			var all []int64
			for i, r := range results {
				for j := 1; j < len(r); j++ {
					if r[j] <= r[j-1] {
						t.Errorf("client %d saw %d after %d: the counter went back", i, r[j], r[j-1])
						break
					}
				}
				all = append(all, r...)
			}
			sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
			for i, v := range all {
				if v != int64(i+1) {
					t.Fatalf("the runs' replies sorted: position %d is %d, want %d (a value seen twice or "+
						"skipped: scripts interleaved)", i, v, i+1)
				}
			}
			c := redis.NewClient(&redis.Options{Addr: addr})
			defer c.Close()
			if v, err := c.Get(ctx, "counter").Result(); err != nil || v != strconv.Itoa(clients*each) {
				t.Fatalf("GET counter = %q, %v; want %d", v, err, clients*each)
			}
		})
	}
}
