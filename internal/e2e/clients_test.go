package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/testnode"
)

// nodeClientsDir installs the pinned Node.js clients of testdata/node (ioredis and node-redis,
// package-lock.json, npm ci) into a fresh directory beside a copy of their check programs, and
// returns that directory. Without node and npm, or when the npm registry cannot be reached, the
// test is skipped, or fails under CI=true.
func nodeClientsDir(t *testing.T) string {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format+"; required under CI=true", args...)
		}
		t.Skipf(format+"; install Node.js and npm to run this test", args...)
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			fail("no %s on PATH (Debian: nodejs, npm)", tool)
		}
	}
	src := filepath.Join("testdata", "node")
	files, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		fail("npm ci of the Node.js clients: %v\n%s", err, out)
	}
	return dir
}

// transcript runs a client's check program (prog and its arguments, in dir) against the
// server at addr, and returns the transcript it prints, one line per step.
func transcript(t *testing.T, dir, addr string, prog ...string) []string {
	t.Helper()
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		t.Fatalf("address %q has no port", addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog[0], append(prog[1:], host, port)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s against %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(prog, " "), addr, err, stdout.Bytes(), stderr.Bytes())
	}
	return strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
}

// clientSetups are where a real client's transcript is compared with Redis's: the memory store
// on event loops and with a goroutine per client, the disk store, the redis store without and
// with the near cache, and a member of a three-member replicated and partitioned cluster (not
// the first, so that some keys are another member's).
var clientSetups = []string{"memory", "memory-goroutines", "disk", "redis", "redis-near", "replicated", "partitioned"}

// clusterDiffers are the steps of a client's transcript whose replies through a cluster member
// differ from Redis's as the README says they do, by setup and step name, each with the text
// the member's reply must contain instead: MULTI and MSETNX over keys of several owners get
// CROSSSLOT (or EXECABORT, when the refused command was queued), and INFO's keyspace line
// counts the member's own keys (on a partitioned member that owns none of the step's keys, no
// line).
type clusterDiffers map[string]map[string]string

// sameAsRedis runs a client's check program against a real redis-server and then against Vela
// in each of clientSetups, and requires every transcript to equal Redis's line for line, but
// for the steps differs names.
func sameAsRedis(t *testing.T, dir string, differs clusterDiffers, prog ...string) {
	want := transcript(t, dir, redistest.Start(t).Addr, prog...)
	for _, setup := range clientSetups {
		t.Run(setup, func(t *testing.T) {
			var addr string
			switch setup {
			case "replicated":
				nodes := testnode.StartReplicated(t, 3, nil)
				testnode.WaitReplicated(t, 10*time.Second, nodes...)
				addr = nodes[1].Addr()
			case "partitioned":
				nodes := testnode.StartCluster(t, 3, nil)
				testnode.WaitConverged(t, 10*time.Second, nodes...)
				addr = nodes[1].Addr()
			default:
				base, near := strings.CutSuffix(setup, "-near")
				cfg := scriptStoreConfig(t, base)
				cfg.NearCache.Enabled = near
				addr = testnode.Start(t, cfg).Addr()
			}
			got := transcript(t, dir, addr, prog...)
			mismatches, expected := 0, 0
			for i := 0; i < len(want) || i < len(got); i++ {
				var w, g string
				if i < len(want) {
					w = want[i]
				}
				if i < len(got) {
					g = got[i]
				}
				if w == g {
					continue
				}
				if instead, ok := differs[setup][stepName(w)]; ok && stepName(w) == stepName(g) && strings.Contains(g, instead) {
					expected++
					continue
				}
				mismatches++
				t.Errorf("step %d:\n redis: %s\n  vela: %s", i+1, w, g)
			}
			switch {
			case mismatches == 0 && expected == 0:
				t.Logf("%d steps, the same as Redis's", len(got))
			case mismatches == 0:
				t.Logf("%d steps, the same as Redis's but for %d that differ as documented", len(got), expected)
			}
		})
	}
}

// stepName returns the name of a transcript line's step (its JSON array's first element).
func stepName(line string) string {
	var step []json.RawMessage
	if json.Unmarshal([]byte(line), &step) != nil || len(step) == 0 {
		return ""
	}
	var name string
	_ = json.Unmarshal(step[0], &name)
	return name
}

// TestIORedis runs ioredis (Node.js), unchanged, through 85 steps against a real redis-server
// and against Vela on each store and through a cluster member, and requires the transcripts to
// be equal (in a cluster, but for the documented differences). The steps are what
// applications do through ioredis: its connect sequence (the INFO ready check, CLIENT SETNAME
// from connectionName), string and key commands with their options and error texts, binary
// keys and values, a 1 MiB value, scanStream, pipelines, MULTI with a command error inside and
// with a syntax error, WATCH with and without a conflicting write from a second connection,
// auto-pipelining, and scripts through defineCommand (EVALSHA, falling back to EVAL on
// NOSCRIPT) in and out of a pipeline.
func TestIORedis(t *testing.T) {
	sameAsRedis(t, nodeClientsDir(t), clusterDiffers{
		"replicated":  {"msetnx": "CROSSSLOT", "multi": "EXECABORT"},
		"partitioned": {"info keyspace parses": "false", "multi": "EXECABORT"},
	}, "node", "check-ioredis.js")
}

// TestNodeRedis runs node-redis (the npm package redis), unchanged, through 58 steps over RESP2
// and again over RESP3 (its HELLO 3 and CLIENT SETINFO on connect) against a real
// redis-server and against Vela on each store and through a cluster member, and requires the
// transcripts to be equal (in a cluster, but for the documented differences):
// string and key commands with its option objects, binary values through a type mapping,
// scanIterator, MULTI with a failing command (MultiErrorReply and its replies), a pipeline,
// WATCH on a duplicated connection with and without a conflicting write, and a script defined
// with defineScript in and out of MULTI.
func TestNodeRedis(t *testing.T) {
	sameAsRedis(t, nodeClientsDir(t), clusterDiffers{
		"replicated": {"resp2 mSetNX": "CROSSSLOT", "resp3 mSetNX": "CROSSSLOT",
			"resp2 multi": "CROSSSLOT", "resp3 multi": "CROSSSLOT"},
		"partitioned": {"resp2 info keyspace": "false", "resp3 info keyspace": "false",
			"resp2 multi": "CROSSSLOT", "resp3 multi": "CROSSSLOT"},
	}, "node", "check-node-redis.js")
}

// TestRedisPy runs redis-py, unchanged, through 84 steps against a real redis-server and
// against Vela on each store and through a cluster member, and requires the transcripts to be
// equal (in a cluster, but for the documented differences): the connection's
// client_name, INFO and CONFIG GET as redis-py parses them, string and key commands with the
// keyword options redis-py maps to Redis's (ex, exat, keepttl, nx/xx/gt/lt…), decoded and raw
// replies, binary values, scan_iter, pipelines with and without a transaction (errors kept in
// place), a transaction's syntax error, WATCH with and without a conflicting write, the
// transaction() helper, and register_script in and out of a pipeline.
func TestRedisPy(t *testing.T) {
	python := pythonWithRedis(t)
	dir, err := filepath.Abs(filepath.Join("testdata", "redispy"))
	if err != nil {
		t.Fatal(err)
	}
	sameAsRedis(t, dir, clusterDiffers{
		"replicated":  {"msetnx": "CROSSSLOT"},
		"partitioned": {"info keyspace": "{}"},
	}, python, "check.py")
}
