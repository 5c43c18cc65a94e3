package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/testnode"
)

// targets returns the servers a compatibility case runs against: Vela always, a real Redis when
// redis-server is installed (always under CI).
func targets(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{"vela": testnode.StartDefault(t).Addr()}
	out["redis"] = redistest.Start(t, "--databases", "1").Addr
	return out
}

// TestGoRedis drives every command family through go-redis v9, over RESP2 and RESP3, against
// Vela and against Redis with the same expectations.
func TestGoRedis(t *testing.T) {
	for name, addr := range targets(t) {
		for _, proto := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s-resp%d", name, proto), func(t *testing.T) {
				c := redis.NewClient(&redis.Options{Addr: addr, Protocol: proto, MaxRetries: -1})
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := c.FlushAll(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				goRedisStrings(ctx, t, c)
				goRedisKeys(ctx, t, c)
				goRedisServer(ctx, t, c, proto)
				goRedisPipeline(ctx, t, c)
				goRedisErrors(ctx, t, c)
			})
		}
	}
}

// must fails t when err is not nil.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func want[T comparable](t *testing.T, what string, got T, err error, exp T) {
	t.Helper()
	if err != nil || got != exp {
		t.Fatalf("%s = %v, %v; want %v", what, got, err, exp)
	}
}

func goRedisStrings(ctx context.Context, t *testing.T, c *redis.Client) {
	t.Helper()
	bin := "bin\r\n\x00\xff"
	must(t, "SET", c.Set(ctx, "s", bin, 0).Err())
	v, err := c.Get(ctx, "s").Result()
	want(t, "GET binary", v, err, bin)
	_, err = c.Get(ctx, "missing").Result()
	if !errors.Is(err, redis.Nil) {
		t.Fatalf("GET missing: %v, want redis.Nil", err)
	}
	ok, err := c.SetNX(ctx, "s", "x", 0).Result()
	want(t, "SETNX existing", ok, err, false)
	must(t, "SETEX", c.Do(ctx, "SETEX", "ex", 3600, "v").Err())
	ttl, err := c.TTL(ctx, "ex").Result()
	if err != nil || ttl < 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL after SETEX = %v, %v", ttl, err)
	}
	old, err := c.SetArgs(ctx, "ex", "v2", redis.SetArgs{KeepTTL: true, Get: true}).Result()
	want(t, "SET KEEPTTL GET", old, err, "v")
	if ttl, _ := c.PTTL(ctx, "ex").Result(); ttl <= 0 {
		t.Fatalf("KEEPTTL lost the TTL: %v", ttl)
	}
	_, err = c.SetArgs(ctx, "ex", "v3", redis.SetArgs{Mode: "NX"}).Result()
	if !errors.Is(err, redis.Nil) {
		t.Fatalf("SET NX existing: %v, want redis.Nil", err)
	}
	at := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	must(t, "SET EXAT", c.SetArgs(ctx, "at", "v", redis.SetArgs{ExpireAt: at}).Err())
	et, err := c.ExpireTime(ctx, "at").Result()
	want(t, "EXPIRETIME", et, err, time.Duration(at.Unix())*time.Second)
	prev, err := c.Do(ctx, "GETSET", "s", "new").Text()
	want(t, "GETSET", prev, err, bin)
	v, err = c.GetEx(ctx, "s", time.Minute).Result()
	want(t, "GETEX", v, err, "new")
	v, err = c.GetDel(ctx, "s").Result()
	want(t, "GETDEL", v, err, "new")
	must(t, "MSET", c.MSet(ctx, "m1", "1", "m2", "2").Err())
	vals, err := c.MGet(ctx, "m1", "missing", "m2").Result()
	if err != nil || len(vals) != 3 || vals[0] != "1" || vals[1] != nil || vals[2] != "2" {
		t.Fatalf("MGET = %#v, %v", vals, err)
	}
	ok, err = c.MSetNX(ctx, "m1", "x", "m3", "3").Result()
	want(t, "MSETNX", ok, err, false)
	n, err := c.Incr(ctx, "n").Result()
	want(t, "INCR", n, err, 1)
	n, err = c.IncrBy(ctx, "n", 41).Result()
	want(t, "INCRBY", n, err, 42)
	n, err = c.DecrBy(ctx, "n", 2).Result()
	want(t, "DECRBY", n, err, 40)
	n, err = c.Decr(ctx, "n").Result()
	want(t, "DECR", n, err, 39)
	f, err := c.IncrByFloat(ctx, "f", 10.5).Result()
	want(t, "INCRBYFLOAT", f, err, 10.5)
	f, err = c.IncrByFloat(ctx, "f", 0.1).Result()
	want(t, "INCRBYFLOAT", f, err, 10.6)
	n, err = c.Append(ctx, "ap", "ab").Result()
	want(t, "APPEND", n, err, 2)
	n, err = c.StrLen(ctx, "ap").Result()
	want(t, "STRLEN", n, err, 2)
}

func goRedisKeys(ctx context.Context, t *testing.T, c *redis.Client) {
	t.Helper()
	must(t, "MSET", c.MSet(ctx, "k1", "a", "k2", "b", "other", "c").Err())
	n, err := c.Exists(ctx, "k1", "k2", "nope", "k1").Result()
	want(t, "EXISTS", n, err, 3)
	n, err = c.Touch(ctx, "k1", "nope").Result()
	want(t, "TOUCH", n, err, 1)
	typ, err := c.Type(ctx, "k1").Result()
	want(t, "TYPE", typ, err, "string")
	ok, err := c.ExpireNX(ctx, "k1", time.Hour).Result()
	want(t, "EXPIRE NX", ok, err, true)
	ok, err = c.ExpireGT(ctx, "k1", time.Minute).Result()
	want(t, "EXPIRE GT", ok, err, false)
	ok, err = c.ExpireLT(ctx, "k1", time.Minute).Result()
	want(t, "EXPIRE LT", ok, err, true)
	ok, err = c.ExpireXX(ctx, "k2", time.Minute).Result()
	want(t, "EXPIRE XX", ok, err, false)
	ok, err = c.PExpire(ctx, "k2", 90*time.Second).Result()
	want(t, "PEXPIRE", ok, err, true)
	ok, err = c.ExpireAt(ctx, "other", time.Now().Add(time.Hour)).Result()
	want(t, "EXPIREAT", ok, err, true)
	ok, err = c.PExpireAt(ctx, "other", time.Now().Add(time.Hour)).Result()
	want(t, "PEXPIREAT", ok, err, true)
	if d, err := c.PTTL(ctx, "k2").Result(); err != nil || d <= 80*time.Second || d > 90*time.Second {
		t.Fatalf("PTTL = %v, %v", d, err)
	}
	if d, err := c.PExpireTime(ctx, "k2").Result(); err != nil || d < time.Duration(time.Now().UnixMilli())*time.Millisecond {
		t.Fatalf("PEXPIRETIME = %v, %v", d, err)
	}
	ok, err = c.Persist(ctx, "k2").Result()
	want(t, "PERSIST", ok, err, true)
	d, err := c.TTL(ctx, "k2").Result()
	want(t, "TTL persistent", d, err, -1)
	d, err = c.TTL(ctx, "nope").Result()
	want(t, "TTL missing", d, err, -2)
	keys, err := c.Keys(ctx, "k?").Result()
	sort.Strings(keys)
	if err != nil || fmt.Sprint(keys) != "[k1 k2]" {
		t.Fatalf("KEYS = %v, %v", keys, err)
	}
	var scanned []string
	iter := c.Scan(ctx, 0, "k*", 1).Iterator()
	for iter.Next(ctx) {
		scanned = append(scanned, iter.Val())
	}
	must(t, "SCAN", iter.Err())
	sort.Strings(scanned)
	if fmt.Sprint(scanned) != "[k1 k2]" {
		t.Fatalf("SCAN MATCH k* = %v", scanned)
	}
	typed, _, err := c.ScanType(ctx, 0, "", 1000, "hash").Result()
	if err != nil || len(typed) != 0 {
		t.Fatalf("SCAN TYPE hash = %v, %v", typed, err)
	}
	n, err = c.Del(ctx, "k1", "nope").Result()
	want(t, "DEL", n, err, 1)
	n, err = c.Unlink(ctx, "k2").Result()
	want(t, "UNLINK", n, err, 1)
}

func goRedisServer(ctx context.Context, t *testing.T, c *redis.Client, proto int) {
	t.Helper()
	pong, err := c.Ping(ctx).Result()
	want(t, "PING", pong, err, "PONG")
	echo, err := c.Echo(ctx, "hi").Result()
	want(t, "ECHO", echo, err, "hi")
	size, err := c.DBSize(ctx).Result()
	if err != nil || size == 0 {
		t.Fatalf("DBSIZE = %d, %v", size, err)
	}
	info, err := c.Info(ctx, "server").Result()
	if err != nil || !containsLine(info, "redis_version:") {
		t.Fatalf("INFO server = %q, %v", info, err)
	}
	cfg, err := c.ConfigGet(ctx, "maxclients").Result()
	if err != nil || cfg["maxclients"] != "10000" {
		t.Fatalf("CONFIG GET maxclients = %v, %v", cfg, err)
	}
	now, err := c.Time(ctx).Result()
	if err != nil || time.Until(now).Abs() > time.Minute {
		t.Fatalf("TIME = %v, %v", now, err)
	}
	id, err := c.ClientID(ctx).Result()
	if err != nil || id <= 0 {
		t.Fatalf("CLIENT ID = %d, %v", id, err)
	}
	list, err := c.ClientList(ctx).Result()
	if err != nil || !containsLine(list, "id=") {
		t.Fatalf("CLIENT LIST = %q, %v", list, err)
	}
	cmds, err := c.Command(ctx).Result()
	if err != nil || cmds["get"] == nil || cmds["get"].Arity != 2 || !cmds["get"].ReadOnly {
		t.Fatalf("COMMAND: get = %+v, %v", cmds["get"], err)
	}
	// A dedicated connection keeps its name.
	conn := c.Conn()
	defer conn.Close()
	must(t, "CLIENT SETNAME", conn.ClientSetName(ctx, "e2e").Err())
	name, err := conn.ClientGetName(ctx).Result()
	want(t, "CLIENT GETNAME", name, err, "e2e")
	hello, err := conn.Hello(ctx, proto, "", "", "").Result()
	if err != nil || fmt.Sprint(hello["proto"]) != strconv.Itoa(proto) || hello["server"] != "redis" {
		t.Fatalf("HELLO %d = %v, %v", proto, hello, err)
	}
	must(t, "SELECT 0", conn.Select(ctx, 0).Err())
	must(t, "FLUSHDB", c.FlushDB(ctx).Err())
	size, err = c.DBSize(ctx).Result()
	want(t, "DBSIZE after FLUSHDB", size, err, 0)
}

func containsLine(text, prefix string) bool {
	for i := 0; i+len(prefix) <= len(text); i++ {
		if (i == 0 || text[i-1] == '\n') && text[i:i+len(prefix)] == prefix {
			return true
		}
	}
	return false
}

func goRedisPipeline(ctx context.Context, t *testing.T, c *redis.Client) {
	t.Helper()
	const n = 1000
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := 0; i < n; i++ {
			p.Set(ctx, "p"+strconv.Itoa(i), i, 0)
			p.Incr(ctx, "p"+strconv.Itoa(i))
		}
		p.Get(ctx, "missing")
		return nil
	})
	if !errors.Is(err, redis.Nil) || len(cmds) != 2*n+1 {
		t.Fatalf("pipeline: %d replies, %v", len(cmds), err)
	}
	for i := 0; i < n; i++ {
		if v, err := cmds[2*i+1].(*redis.IntCmd).Result(); err != nil || v != int64(i+1) {
			t.Fatalf("pipelined INCR p%d = %d, %v", i, v, err)
		}
	}
	vals, err := c.MGet(ctx, "p0", "p999").Result()
	if err != nil || vals[0] != "1" || vals[1] != "1000" {
		t.Fatalf("MGET after pipeline = %v, %v", vals, err)
	}
}

// goRedisErrors checks that errors reach go-redis as redis.Error with Redis's exact texts.
func goRedisErrors(ctx context.Context, t *testing.T, c *redis.Client) {
	t.Helper()
	must(t, "SET", c.Set(ctx, "text", "abc", 0).Err())
	for _, tc := range []struct {
		name string
		err  error
		text string
	}{
		{"INCR non-integer", c.Incr(ctx, "text").Err(), "ERR value is not an integer or out of range"},
		{"INCRBYFLOAT non-float", c.IncrByFloat(ctx, "text", 1).Err(), "ERR value is not a valid float"},
		{"SET EX 0", c.Do(ctx, "SET", "k", "v", "EX", "0").Err(), "ERR invalid expire time in 'set' command"},
		{"SET syntax", c.Do(ctx, "SET", "k", "v", "NX", "XX").Err(), "ERR syntax error"},
		{"arity", c.Do(ctx, "GET").Err(), "ERR wrong number of arguments for 'get' command"},
		{"unknown", c.Do(ctx, "NOSUCH", "a").Err(), "ERR unknown command 'NOSUCH', with args beginning with: 'a' "},
		{"subcommand arity", c.Do(ctx, "CLIENT", "SETNAME").Err(), "ERR wrong number of arguments for 'client|setname' command"},
		{"EXPIRE options", c.Do(ctx, "EXPIRE", "k", "10", "NX", "XX").Err(), "ERR NX and XX, GT or LT options at the same time are not compatible"},
		{"SELECT 1", c.Do(ctx, "SELECT", "1").Err(), "ERR DB index is out of range"},
	} {
		var re redis.Error
		if !errors.As(tc.err, &re) || re.Error() != tc.text {
			t.Errorf("%s: got %v, want redis.Error %q", tc.name, tc.err, tc.text)
		}
	}
}
