package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/testproc"
)

// composeFile is what this test reads of docker-compose.yml.
type composeFile struct {
	Services map[string]struct {
		Environment map[string]string `yaml:"environment"`
		Profiles    []string          `yaml:"profiles"`
	} `yaml:"services"`
}

// TestComposeClusterRuns runs what docker-compose.yml and the Dockerfile describe, without
// Docker (no engine runs on the test machines): the binary with the image's command line and
// each service's environment, its host names and ports mapped to free loopback ports. The three
// partitioned nodes must all report ready on /readyz (the compose healthcheck), form one
// cluster keeping two copies of each key, and serve a key written through one node through the
// others with the password; the redis-store node must serve through a real Redis.
func TestComposeClusterRuns(t *testing.T) {
	root := moduleRoot(t)
	var compose composeFile
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	cmd := dockerCmd(t, filepath.Join(root, "Dockerfile"))
	bin := testproc.Build(t)
	backing := redistest.Start(t)

	// Every address a container uses, and the loopback address standing in for it.
	addrs := map[string]string{"redis:6379": backing.Addr}
	nodes := []string{"vela1", "vela2", "vela3"}
	// A port is free when picked, but a process given it earlier may not have bound it yet: the
	// kernel can hand the same port out twice, so none is used twice here.
	used := map[int]bool{}
	port := func() string {
		for {
			if p := redistest.FreePort(t); !used[p] {
				used[p] = true
				return fmt.Sprintf("127.0.0.1:%d", p)
			}
		}
	}
	for _, n := range nodes {
		addrs[n+":7946"] = port()
	}
	type proc struct{ resp, metrics string }
	procs := map[string]proc{}
	start := func(service string) {
		svc, ok := compose.Services[service]
		if !ok {
			t.Fatalf("docker-compose.yml has no service %s", service)
		}
		p := proc{resp: port(), metrics: port()}
		local := map[string]string{"0.0.0.0:6379": p.resp, "0.0.0.0:9121": p.metrics, "0.0.0.0:7946": addrs[service+":7946"]}
		mapAddr := func(s string) string {
			for from, to := range local {
				s = strings.ReplaceAll(s, from, to)
			}
			for from, to := range addrs {
				s = strings.ReplaceAll(s, from, to)
			}
			return s
		}
		env := os.Environ()
		for k, v := range svc.Environment {
			env = append(env, k+"="+mapAddr(composeDefaults(v)))
		}
		args := make([]string, len(cmd))
		for i, a := range cmd {
			args[i] = mapAddr(a)
		}
		c := exec.Command(bin, args...)
		c.Env = env
		out := &strings.Builder{}
		c.Stdout, c.Stderr = out, out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = c.Process.Kill()
			_ = c.Wait()
			if t.Failed() {
				t.Logf("--- %s ---\n%s", service, out.String())
			}
		})
		procs[service] = p
	}
	for _, n := range nodes {
		start(n)
	}
	start("vela-redis")
	for name, p := range procs {
		waitReadyz(t, name, p.metrics)
	}

	password := composeDefaults(compose.Services["vela1"].Environment["VELA_REQUIREPASS"])
	ctx := context.Background()
	clients := map[string]*redis.Client{}
	for name, p := range procs {
		c := redis.NewClient(&redis.Options{Addr: p.resp, Password: password})
		t.Cleanup(func() { _ = c.Close() })
		clients[name] = c
	}
	if err := redis.NewClient(&redis.Options{Addr: procs["vela1"].resp}).Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Errorf("PING without the password: %v, want NOAUTH", err)
	}
	if err := clients["vela1"].Set(ctx, "compose:k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		c := clients[n]
		if v, err := c.Get(ctx, "compose:k").Result(); err != nil || v != "v" {
			t.Errorf("GET through %s = %q, %v", n, v, err)
		}
		members, err := c.Do(ctx, "VELA", "NODES").Slice()
		if err != nil || len(members) != 3 {
			t.Errorf("VELA NODES through %s: %d members, %v", n, len(members), err)
		}
		if owners, err := c.Do(ctx, "VELA", "OWNER", "compose:k").StringSlice(); err != nil || len(owners) != 2 {
			t.Errorf("VELA OWNER through %s = %v, %v; want 2 holders (VELA_CLUSTER_REPLICAS)", n, owners, err)
		}
	}
	rc := clients["vela-redis"]
	if err := rc.Set(ctx, "compose:r", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	direct := redis.NewClient(&redis.Options{Addr: backing.Addr})
	defer direct.Close()
	if v, err := direct.Get(ctx, "compose:r").Result(); err != nil || v != "v" {
		t.Errorf("the redis-store node's write, read in Redis: %q, %v", v, err)
	}
}

// moduleRoot returns the repository's root directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// dockerCmd returns the image's command line: the Dockerfile's last CMD (exec form).
func dockerCmd(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cmd []string
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "CMD "); ok {
			if err := json.Unmarshal([]byte(rest), &cmd); err != nil {
				t.Fatalf("Dockerfile CMD %q: %v", rest, err)
			}
		}
	}
	if len(cmd) == 0 {
		t.Fatal("the Dockerfile has no CMD")
	}
	return cmd
}

// composeDefaults expands ${NAME:-default} as Compose does when NAME is unset.
func composeDefaults(s string) string {
	return regexp.MustCompile(`\$\{[A-Z_]+:-([^}]*)\}`).ReplaceAllString(s, "$1")
}

// waitReadyz polls http://addr/readyz, as the compose healthcheck does, until it answers 200.
func waitReadyz(t *testing.T, name, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never reported ready on /readyz: %s", name, last)
}
