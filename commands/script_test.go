package commands_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/store/disk"
)

// TestScriptCannotChangeTheNext: Lua states are reused between scripts, so no script may leave
// anything behind: every way to change a library, a global, the string metatable or a
// protected table is refused, and the scripts run after each attempt still see the standard
// library intact.
func TestScriptCannotChangeTheNext(t *testing.T) {
	srv := testnode.Start(t, testnode.Config())
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 1})
	defer c.Close()
	attempts := []string{
		"string.upper = nil",
		"string.len = function() return 0 end",
		"redis.call = nil",
		"table.insert = nil",
		"math.floor = nil",
		"rawset(string, 'len', nil)",
		"rawset(_G, 'x', 1)",
		"table.insert(string, 'x')",
		"table.insert(_G, 'x')",
		"table.sort(getmetatable(''))",
		"getmetatable('').__index = {}",
		"getmetatable('').__index.upper = nil",
		"rawset(getmetatable('').__index, 'upper', nil)",
		"rawset(getmetatable(''), '__index', {})",
		"setmetatable(_G, {})",
		"setmetatable(string, {})",
		"loadstring('string.upper = nil')()",
		"pcall = nil",
		"x = 1",
		"KEYS = 1",
		"_G.redis = nil",
	}
	const check = "return {string.upper('ab'), string.len('abc'), type(redis.call), type(table.insert), " +
		"math.floor(2.5), ('x'):rep(2), type(pcall), type(rawget(_G, 'x')), type(KEYS), next(string)}"
	want := []any{"AB", int64(3), "function", "function", int64(2), "xx", "function", "nil", "table"}
	for round := range 3 { // the pool holds the states: try each more than once
		for _, body := range attempts {
			err := c.Eval(ctx, body, nil).Err()
			if err == nil {
				t.Errorf("round %d: %q ran without an error", round, body)
			}
			got, err := c.Eval(ctx, check, nil).Slice()
			if err != nil || len(got) != len(want) {
				t.Fatalf("after %q: %v, %v", body, got, err)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("after %q: element %d is %v, want %v", body, i+1, got[i], want[i])
				}
			}
		}
	}
}

// TestScriptKeysAreItsOwn: KEYS and ARGV are ordinary tables a script may change, and the
// runner reuses them from run to run; whatever one script does to them (more entries, fewer,
// string keys, a metatable, entries removed), the next sees exactly the keys and arguments it
// was sent, in runs with more, fewer and no keys.
func TestScriptKeysAreItsOwn(t *testing.T) {
	srv := testnode.Start(t, testnode.Config())
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 1})
	defer c.Close()
	changes := []string{
		"KEYS[#KEYS + 1] = 'extra' ARGV[#ARGV + 1] = 'extra'",
		"KEYS[100] = 'far' ARGV[100] = 'far'",
		"KEYS.name = 'x' ARGV.name = 'x'",
		"setmetatable(KEYS, {__index = function() return 'meta' end}) setmetatable(ARGV, {__len = function() return 9 end})",
		"KEYS[1] = nil ARGV[1] = nil",
		"for i = #KEYS, 1, -1 do table.remove(KEYS, i) end for i = 1, 5 do table.insert(ARGV, 1, 'front') end",
		"KEYS[1] = 5 ARGV[1] = {}",
		"KEYS.name = 'x' KEYS.name = nil KEYS[3] = 'y' KEYS[3] = nil",
	}
	const check = "return {#KEYS, #ARGV, table.concat(KEYS, ','), table.concat(ARGV, ','), " +
		"tostring(getmetatable(KEYS)), tostring(getmetatable(ARGV)), tostring(KEYS[#KEYS + 1]), " +
		"tostring(ARGV[#ARGV + 1]), tostring(next(KEYS, #KEYS > 0 and #KEYS or nil)), tostring(KEYS.name)}"
	sizes := [][2]int{{2, 3}, {1, 1}, {0, 0}, {3, 0}, {0, 2}, {2, 3}}
	for round := range 2 {
		for _, change := range changes {
			for _, size := range sizes {
				keys := make([]string, size[0])
				for i := range keys {
					keys[i] = fmt.Sprintf("k%d", i+1)
				}
				argv := make([]any, size[1])
				for i := range argv {
					argv[i] = fmt.Sprintf("a%d", i+1)
				}
				if err := c.Eval(ctx, change+" return 1", []string{"k1", "k2", "k3", "k4"}, "a1", "a2", "a3", "a4").Err(); err != nil {
					t.Fatalf("%q: %v", change, err)
				}
				got, err := c.Eval(ctx, check, keys, argv...).Slice()
				if err != nil {
					t.Fatalf("after %q: %v", change, err)
				}
				strs := func(list []string) string { return strings.Join(list, ",") }
				argStrs := make([]string, len(argv))
				for i, a := range argv {
					argStrs[i] = a.(string)
				}
				want := []any{int64(size[0]), int64(size[1]), strs(keys), strs(argStrs), "nil", "nil", "nil", "nil", "nil", "nil"}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("round %d, after %q, with %d keys and %d arguments: %v, want %v",
						round, change, size[0], size[1], got, want)
				}
			}
		}
	}
}

// TestScriptLimitStopsAScript: a script that never ends is stopped at the node's limit with a
// clear error, and the node serves other clients afterwards.
func TestScriptLimitStopsAScript(t *testing.T) {
	srv := testnode.Start(t, testnode.Config())
	commands.SetScriptLimit(srv.Node(), 300*time.Millisecond)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 10 * time.Second})
	defer c.Close()
	err := c.Eval(ctx, "redis.call('SET', 'w', '1') while true do end", nil).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "ERR Script stopped after running longer than Vela's limit") ||
		!strings.HasSuffix(err.Error(), ", on @user_script:1.") {
		t.Fatalf("endless script: %v", err)
	}
	if v, err := c.Get(ctx, "w").Result(); err != nil || v != "1" {
		t.Fatalf("GET w after the stopped script = %q, %v; want its write kept", v, err)
	}
	// A script that catches the stop with pcall is stopped all the same, at its own line (not
	// the sandbox's pcall wrapper's), and so is one looping in a coroutine.
	for _, body := range []string{
		"local n = 0\nwhile true do pcall(function() while true do n = n + 1 end end) end",
		"local co = coroutine.wrap(function() while true do end end)\nco()",
	} {
		err := c.Eval(ctx, body, nil).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "ERR Script stopped after running longer than Vela's limit") ||
			!strings.HasSuffix(err.Error(), ", on @user_script:2.") {
			t.Fatalf("%q: %v", body, err)
		}
	}
}

// TestScriptKill: SCRIPT KILL stops a script that has not written, whose client gets Redis's
// reply, answers NOTBUSY when no script runs, and refuses to stop one that has written
// (UNKILLABLE), which then runs until the limit. The connections are served by goroutines: a
// script runs on its event loop, which reads no other command meanwhile.
func TestScriptKill(t *testing.T) {
	cfg := testnode.Config()
	cfg.EventLoops = 0
	srv := testnode.Start(t, cfg)
	commands.SetScriptLimit(srv.Node(), 2*time.Second)
	runner := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 10 * time.Second})
	defer runner.Close()
	killer := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer killer.Close()
	if err := killer.ScriptKill(ctx).Err(); err == nil || err.Error() != "NOTBUSY No scripts in execution right now." {
		t.Fatalf("SCRIPT KILL with no script running: %v", err)
	}
	kill := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := killer.ScriptKill(ctx).Err()
			got := "OK"
			if err != nil {
				got = err.Error()
			}
			if got == want {
				return
			}
			if !strings.HasPrefix(got, "NOTBUSY") || time.Now().After(deadline) {
				t.Fatalf("SCRIPT KILL = %q, want %q", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	done := make(chan error, 1)
	body := "local i = 0\nwhile true do i = i + 1 end"
	go func() { done <- runner.Eval(ctx, body, nil).Err() }()
	kill("OK")
	err := <-done
	// Line 2 is the loop; a kill that arrives as the script starts stops it at line 1.
	wantKilled := "ERR Script killed by user with SCRIPT KILL... script: " + commandsSHA(body) + ", on @user_script:"
	if err == nil || (err.Error() != wantKilled+"2." && err.Error() != wantKilled+"1.") {
		t.Fatalf("killed script: %v, want %q", err, wantKilled+"2.")
	}

	go func() { done <- runner.Eval(ctx, "redis.call('SET', 'k', 'v') while true do end", nil).Err() }()
	// The script writes first, but nothing outside it can see when it has (the dataset waits
	// for the script): a kill sent at once may find it running and not yet written, and stop
	// it. Give the one statement before the loop ample time, even under the race detector.
	time.Sleep(300 * time.Millisecond)
	kill("UNKILLABLE Sorry the script already executed write commands against the dataset. " +
		"You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.")
	if err := <-done; err == nil || !strings.HasPrefix(err.Error(), "ERR Script stopped") {
		t.Fatalf("a script that wrote, past the limit: %v", err)
	}
}

// TestScriptOddReturns: what a script returns cannot hurt the node: a table that contains
// itself ends in an error element, and string.rep is bounded.
func TestScriptOddReturns(t *testing.T) {
	srv := testnode.Start(t, testnode.Config())
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	v, err := c.Eval(ctx, "local t = {} t[1] = t return t", nil).Result()
	depth := 0
	for err == nil {
		s, ok := v.([]any)
		if !ok || len(s) != 1 {
			break
		}
		depth++
		v = s[0]
		if e, ok := v.(error); ok {
			err = e
		}
	}
	if err == nil || err.Error() != "ERR reached lua stack limit" || depth < 50 {
		t.Fatalf("self-containing table: %d levels, then %v", depth, err)
	}
	if err := c.Eval(ctx, "return string.rep('x', 1e12)", nil).Err(); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("string.rep of 1e12 bytes: %v", err)
	}
	if v, err := c.Eval(ctx, "return 7", nil).Int(); err != nil || v != 7 {
		t.Fatalf("a script after them: %v, %v", v, err)
	}
}

// TestDiskScriptCommitsOnce: on the disk store a script's writes commit as one unit, as EXEC's
// do: one commit for a script that writes 100 keys.
func TestDiskScriptCommitsOnce(t *testing.T) {
	cfg := testnode.Config()
	cfg.Store.Type = "disk"
	cfg.Store.DiskPath = t.TempDir() + "/vela.db"
	srv := testnode.Start(t, cfg)
	st, ok := srv.Store().(*disk.Store)
	if !ok {
		t.Fatalf("store is %T", srv.Store())
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	before := st.Commits()
	n, err := c.Eval(ctx, "for i = 1, 100 do redis.call('SET', 'k' .. i, i) end return redis.call('INCR', 'k1')", nil).Int()
	if err != nil || n != 2 {
		t.Fatalf("script: %v, %v", n, err)
	}
	if got := st.Commits() - before; got != 1 {
		t.Errorf("a script's 101 writes took %d commits, want 1", got)
	}
}

// commandsSHA is a script's name.
func commandsSHA(body string) string {
	return redis.NewScript(body).Hash()
}

// TestScriptCacheInInfo: INFO memory's number_of_cached_scripts counts the scripts EVAL and
// SCRIPT LOAD cached, and SCRIPT FLUSH empties the cache.
func TestScriptCacheInInfo(t *testing.T) {
	srv := testnode.Start(t, testnode.Config())
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	c.ScriptLoad(ctx, "return 1")
	c.Eval(ctx, "return 2", nil)
	c.Eval(ctx, "return 2", nil)
	if got := infoFields(t, c, "memory")["number_of_cached_scripts"]; got != "2" {
		t.Fatalf("number_of_cached_scripts = %q after two scripts, want 2", got)
	}
	c.ScriptFlush(ctx)
	if got := infoFields(t, c, "memory")["number_of_cached_scripts"]; got != "0" {
		t.Fatalf("number_of_cached_scripts = %q after SCRIPT FLUSH, want 0", got)
	}
}
