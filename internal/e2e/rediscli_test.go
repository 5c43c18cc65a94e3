package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// redisCLI returns the path of redis-cli, skipping t when it is missing (failing under CI=true).
func redisCLI(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-cli is required under CI=true: %v", err)
		}
		t.Skip("redis-cli not installed; install redis-tools to run this test")
	}
	return path
}

// cli runs redis-cli against addr with args and stdin, and returns its standard output.
func cli(t *testing.T, addr string, stdin []byte, args ...string) string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, redisCLI(t), append([]string{"-h", host, "-p", port}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("redis-cli %v: %v\nstdout: %s\nstderr: %s", args, err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String()
}

// TestRedisCLIStdinArg: `redis-cli -x SET k < file` stores the file's bytes exactly, whatever
// they contain.
func TestRedisCLIStdinArg(t *testing.T) {
	srv := testnode.StartDefault(t)
	blob := make([]byte, 256<<10)
	rand.New(rand.NewSource(1)).Read(blob)
	copy(blob, "\r\n\x00$5\r\n*1\r\n")
	file := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(file, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if out := cli(t, srv.Addr(), f, "-x", "SET", "blob"); out != "OK\n" {
		t.Fatalf("redis-cli -x SET: %q", out)
	}
	c := respclient.Dial(t, srv.Addr())
	c.Do("GET", "blob").Bulk(string(blob))
	c.Do("STRLEN", "blob").Int(int64(len(blob)))
}

// TestRedisCLIScan: `redis-cli --scan --pattern` lists exactly the matching keys.
func TestRedisCLIScan(t *testing.T) {
	srv := testnode.StartDefault(t)
	c := respclient.Dial(t, srv.Addr())
	var want []string
	for i := 0; i < 500; i++ {
		c.Send("SET", fmt.Sprintf("user:%d", i), "v")
		c.Send("SET", fmt.Sprintf("other:%d", i), "v")
		want = append(want, fmt.Sprintf("user:%d", i))
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		if v, _, err := c.Receive(); err != nil || v.Str != "OK" {
			t.Fatalf("SET %d: %v %v", i, v, err)
		}
	}
	got := strings.Fields(cli(t, srv.Addr(), nil, "--scan", "--pattern", "user:*"))
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("--scan --pattern user:* returned %d keys, want %d", len(got), len(want))
	}
	if all := strings.Fields(cli(t, srv.Addr(), nil, "--scan")); len(all) != 1000 {
		t.Fatalf("--scan returned %d keys, want 1000", len(all))
	}
}

// TestRedisCLIPipe: `redis-cli --pipe` (mass insertion) loads 100,000 keys with no error.
func TestRedisCLIPipe(t *testing.T) {
	const n = 100_000
	srv := testnode.StartDefault(t)
	var in []byte
	for i := 0; i < n; i++ {
		in = respclient.AppendCommand(in, []byte("SET"), []byte("key:"+strconv.Itoa(i)), []byte("value:"+strconv.Itoa(i)))
	}
	out := cli(t, srv.Addr(), in, "--pipe")
	if !strings.Contains(out, fmt.Sprintf("errors: 0, replies: %d", n)) {
		t.Fatalf("redis-cli --pipe: %q", out)
	}
	c := respclient.Dial(t, srv.Addr())
	c.Do("DBSIZE").Int(n)
	c.Do("GET", "key:99999").Bulk("value:99999")
}

// TestRedisCLIOutput runs commands through redis-cli (as a script on stdin, and over RESP3 with
// -3) against Vela and Redis and requires the same output: the tool renders every reply type.
func TestRedisCLIOutput(t *testing.T) {
	script := []byte("SET a 1\nGET a\nINCR a\nGET nosuch\nMGET a nosuch\nSET b \"x y\"\nGETEX b PERSIST\n" +
		"EXPIRE a 100\nTTL a\nTYPE a\nEXISTS a b c\nKEYS a\nINCRBYFLOAT f 1.5\nHELLO 3 SETNAME\n" +
		"CLIENT GETNAME\nNOSUCH x\nSET a\nCONFIG GET maxclients\nDBSIZE\nFLUSHALL\nDBSIZE\n")
	resp3 := []string{"-3", "GET", "nosuch"}
	outputs := map[string][]string{}
	for name, addr := range targets(t) {
		outputs[name] = []string{
			cli(t, addr, script),
			cli(t, addr, nil, resp3...),
			cli(t, addr, nil, "-3", "CONFIG", "GET", "timeout"),
			cli(t, addr, nil, "--no-raw", "MGET", "a", "nosuch"),
		}
	}
	if outputs["redis"] == nil {
		return // targets skipped Redis
	}
	for i := range outputs["vela"] {
		if outputs["vela"][i] != outputs["redis"][i] {
			t.Errorf("output %d differs:\nredis: %q\nvela:  %q", i, outputs["redis"][i], outputs["vela"][i])
		}
	}
}

// TestRedisCLIHotkeys runs `redis-cli --hotkeys`, which scans the keyspace and asks OBJECT FREQ
// of each key: on a node under the lfu policy it names the two keys read most first; on a node
// under ttl_only it stops at Redis's error, as it does against a Redis without an LFU policy.
func TestRedisCLIHotkeys(t *testing.T) {
	cfg := testnode.Config()
	cfg.EvictionPolicy, cfg.MaxMemory = "lfu", 100<<20
	addr := testnode.Start(t, cfg).Addr()
	c := respclient.Dial(t, addr)
	for i := range 20 {
		c.Do("SET", fmt.Sprintf("key:%d", i), "v").OK()
	}
	for range 40 {
		c.Do("GET", "key:3")
		c.Do("GET", "key:11")
	}
	out := cli(t, addr, nil, "--hotkeys")
	_, summary, ok := strings.Cut(out, "-------- summary -------")
	top := regexp.MustCompile(`hot key found with counter: (\d+)\s+keyname: "(key:\d+)"`).FindAllStringSubmatch(summary, 2)
	hot := func(i int) bool {
		n, _ := strconv.Atoi(top[i][1])
		return (top[i][2] == "key:3" || top[i][2] == "key:11") && n > 5 // a new key's counter is 5
	}
	if !ok || len(top) != 2 || !hot(0) || !hot(1) {
		t.Errorf("redis-cli --hotkeys summary: %v in\n%s", top, out)
	}

	// Without an LFU policy redis-cli stops at the first key with the server's error.
	refused := func(addr string) string {
		respclient.Dial(t, addr).Do("SET", "k", "v").OK()
		host, port, _ := strings.Cut(addr, ":")
		out, err := exec.Command(redisCLI(t), "-h", host, "-p", port, "--hotkeys").CombinedOutput()
		if err == nil {
			t.Errorf("redis-cli --hotkeys against %s succeeded without an LFU policy", addr)
		}
		_, msg, _ := strings.Cut(string(out), "Error: ")
		return msg
	}
	if plain, redisOut := refused(testnode.StartDefault(t).Addr()), refused(redistest.Start(t).Addr); plain != redisOut ||
		!strings.Contains(plain, "An LFU maxmemory policy is not selected") {
		t.Errorf("--hotkeys without an LFU policy:\n vela: %s\nredis: %s", plain, redisOut)
	}
}
