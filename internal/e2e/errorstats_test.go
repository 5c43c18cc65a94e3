package e2e_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestErrorStatsLikeRedis sends the same errors to Redis and to Vela, after CONFIG RESETSTAT,
// and compares INFO's errorstats, total_error_replies and commandstats (times aside) exactly:
// refusals (unknown command or subcommand, arity), failures (syntax, values), errors queued in
// MULTI and answered inside EXEC, and the errors of scripts, which Redis counts once where they
// are made: a command a script called counts its error (redis.call's and redis.pcall's alike),
// and the script's reply passing it on does not count it again, while one the script makes
// (error_reply, {err=…}, error()) counts when EVAL answers it, nested in an array too. An
// error's code is its first word when that ends within Redis's 32-character search.
func TestErrorStatsLikeRedis(t *testing.T) {
	redis := respclient.Dial(t, redistest.Start(t).Addr)
	vela := respclient.Dial(t, testnode.StartDefault(t).Addr())
	session := [][]any{
		{"SET", "s", "v"}, {"CONFIG", "RESETSTAT"},
		{"INCR", "s"}, {"GET"}, {"NOSUCH", "x"}, {"CONFIG", "FOO"}, {"CONFIG"}, {"SET", "k", "v", "XX", "NX"},
		{"EXPIRE", "s", "abc"}, {"GETEX", "s", "PX", "-1"}, {"CLIENT", "KILL", "1.2.3.4:5"}, {"EVALSHA", "ffff", "0"},
		{"EVAL", "return redis.call('incr', KEYS[1])", "1", "s"},
		{"EVAL", "return redis.pcall('incr', KEYS[1])", "1", "s"},
		{"EVAL", "local r = redis.pcall('incr', KEYS[1]) return 1", "1", "s"},
		{"EVAL", "return {1, redis.pcall('incr', KEYS[1])}", "1", "s"},
		{"EVAL", "return {err='OTHER x'}", "0"},
		{"EVAL", "return redis.error_reply('MY boom')", "0"},
		{"EVAL", "error('plain')", "0"},
		{"EVAL", "return {1, {err='NESTED x'}}", "0"},
		{"EVAL", "return redis.call('nosuch')", "0"},
		{"EVAL", "return redis.pcall('nosuch')", "0"},
		{"EVAL", "return redis.call('get')", "0"},
		{"EVAL", "return redis.call('multi')", "0"},
		{"EVAL_RO", "return redis.call('set', KEYS[1], 'x')", "1", "a"},
		{"EVAL", "return redis.call()", "0"},
		{"EVAL", "return {err='nospace'}", "0"},
		{"EVAL", "return {err='" + strings.Repeat("A", 30) + " x'}", "0"},
		{"EVAL", "return {err='" + strings.Repeat("B", 31) + " x'}", "0"},
		{"MULTI"}, {"INCR", "s"}, {"NOSUCH"}, {"EXEC"},
		{"MULTI"}, {"INCR", "s"}, {"SET", "a", "b"}, {"GET", "a", "b"}, {"EXEC"},
		{"MULTI"}, {"MULTI"}, {"WATCH", "a"}, {"DISCARD"},
		{"EXEC"}, {"DISCARD"}, {"GET", "s"},
	}
	sameReplies(t, redis, vela, session)
	for _, name := range []string{"errorstats", "commandstats"} {
		if w, g := infoLines(redis, name), infoLines(vela, name); !slices.Equal(w, g) {
			t.Errorf("INFO %s\n redis: %q\n  vela: %q", name, w, g)
		}
	}
	total := regexp.MustCompile(`total_error_replies:\d+`)
	if w, g := total.FindString(redis.Do("INFO", "stats").Value.Text()), total.FindString(vela.Do("INFO", "stats").Value.Text()); w != g {
		t.Errorf("redis %s, vela %s", w, g)
	}
	if !strings.Contains(vela.Do("INFO").Value.Text(), "# Errorstats\r\nerrorstat_") {
		t.Errorf("plain INFO lacks errorstats (Redis prints it)")
	}
	sameReplies(t, redis, vela, [][]any{{"CONFIG", "RESETSTAT"}, {"INFO", "errorstats"}})
}
