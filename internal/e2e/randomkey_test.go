package e2e_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// TestRandomKey: RANDOMKEY answers a null on an empty keyspace, only live keys (never one that
// has expired, never the empty key as a null), and over many calls many different keys, on
// every store and through one member of a partitioned cluster (keys of every member) and of a
// replicated one.
func TestRandomKey(t *testing.T) {
	setups := map[string]func(t *testing.T) *server.Server{
		"memory": func(t *testing.T) *server.Server { return testnode.StartDefault(t) },
		"disk": func(t *testing.T) *server.Server {
			cfg := testnode.Config()
			cfg.Store.Type, cfg.Store.DiskPath = "disk", filepath.Join(t.TempDir(), "vela.db")
			return testnode.Start(t, cfg)
		},
		"redis": func(t *testing.T) *server.Server {
			cfg := testnode.Config()
			cfg.Store.Type, cfg.Store.RedisURL = "redis", "redis://"+redistest.Start(t).Addr+"/0"
			return testnode.Start(t, cfg)
		},
		"partitioned": func(t *testing.T) *server.Server {
			nodes := testnode.StartCluster(t, 3, func(_ int, cfg *config.Config) { cfg.Cluster.Replicas = 2 })
			testnode.WaitConverged(t, 10*time.Second, nodes...)
			return nodes[0]
		},
		"replicated": func(t *testing.T) *server.Server {
			nodes := testnode.StartReplicated(t, 3, nil)
			testnode.WaitReplicated(t, 10*time.Second, nodes...)
			return nodes[1]
		},
	}
	for name, setup := range setups {
		t.Run(name, func(t *testing.T) {
			vela := setup(t)
			c := respclient.Dial(t, vela.Addr())
			c.Do("RANDOMKEY").Nil()
			c.Do("SET", "", "empty").OK()
			c.Do("RANDOMKEY").Bulk("")
			c.Do("DEL", "").Int(1)
			live := map[string]bool{}
			for i := range 60 {
				k := fmt.Sprint("live:", i)
				c.Do("SET", k, "v").OK()
				live[k] = true
				c.Do("SET", fmt.Sprint("gone:", i), "v", "PX", "1").OK()
			}
			time.Sleep(20 * time.Millisecond) // the gone: keys expire, unswept
			seen := map[string]bool{}
			for range 300 {
				v := c.Do("RANDOMKEY").Value
				if v.Null || !live[v.Str] {
					t.Fatalf("RANDOMKEY = %v, want one of the live keys", v)
				}
				seen[v.Str] = true
			}
			if len(seen) < 20 {
				t.Errorf("300 RANDOMKEYs found %d different keys of 60", len(seen))
			}
		})
	}
}
