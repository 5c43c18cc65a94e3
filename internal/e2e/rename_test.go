package e2e_test

import (
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// TestRenameCarriesEntries: RENAME, RENAMENX and COPY move or copy the whole entry — value,
// expiry and tags — on every store and topology: TAGINVALIDATE of the source's tags reaches the
// renamed key and the copy, a replaced destination loses its own tags, and in a cluster every
// holder of the keys (replicas = 2; every member when replicated) holds the new state.
// Keys on two owners of a partitioned cluster get CROSSSLOT, as in Redis Cluster.
func TestRenameCarriesEntries(t *testing.T) {
	for name, setup := range everyPlacement() {
		t.Run(name, func(t *testing.T) {
			nodes, tag := setup(t)
			c := respclient.Dial(t, nodes[0].Addr())
			k := func(s string) string { return tag + s }
			c.Do("SET", k("a"), "v", "PX", "100000", "TAGS", "t1", "t2").OK()
			reader := respclient.Dial(t, nodes[len(nodes)-1].Addr())
			reader.Do("GET", k("a")).Bulk("v")
			reader.Do("GET", k("a")).Bulk("v") // a near cache keeps a copy now
			c.Do("RENAME", k("a"), k("b")).OK()
			for deadline := time.Now().Add(2 * time.Second); !reader.Do("GET", k("a")).Value.Null; {
				if time.Now().After(deadline) {
					t.Fatal("the renamed key is still read through the last member after 2 s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			c.Do("GET", k("b")).Bulk("v")
			c.Do("PTTL", k("b")).IntBetween(90000, 100000)
			c.Do("EXISTS", k("a")).Int(0)
			c.Do("COPY", k("b"), k("c")).Int(1)
			c.Do("PTTL", k("c")).IntBetween(90000, 100000)
			c.Do("RENAMENX", k("c"), k("b")).Int(0)
			c.Do("RENAME", k("nosuch"), k("b")).Err("ERR no such key")
			checkHolders(t, nodes, k("b"), "v")
			checkHolders(t, nodes, k("c"), "v")
			checkHolders(t, nodes, k("a"), "")
			c.Do("LCS", k("b"), k("c")).Bulk("v") // a read of two keys on one member
			c.Do("TAGINVALIDATE", "t1").Int(2)
			c.Do("EXISTS", k("b"), k("c")).Int(0)

			// A replaced destination takes the source's tags, and loses its own.
			c.Do("SET", k("d"), "x", "TAGS", "t3").OK()
			c.Do("SET", k("e"), "y", "TAGS", "t4").OK()
			c.Do("RENAME", k("d"), k("e")).OK()
			c.Do("TAGINVALIDATE", "t4").Int(0)
			c.Do("GET", k("e")).Bulk("x")
			c.Do("SET", k("f"), "z", "TAGS", "t5").OK()
			c.Do("COPY", k("e"), k("f"), "REPLACE").Int(1)
			c.Do("TAGINVALIDATE", "t5").Int(0)
			c.Do("TAGINVALIDATE", "t3").Int(2)
			c.Do("DBSIZE").Int(0)

			if len(nodes) > 1 && nodes[0].Cluster() != nil {
				other := otherOwner(nodes[0], tag)
				c.Do("SET", k("g"), "1").OK()
				c.Do("RENAME", k("g"), other).Err("CROSSSLOT Keys in request don't hash to the same slot")
				c.Do("COPY", k("g"), other).Err("CROSSSLOT Keys in request don't hash to the same slot")
				c.Do("LCS", k("g"), other).Err("CROSSSLOT Keys in request don't hash to the same slot")
			}
		})
	}
}

// everyPlacement starts Vela on each store and topology: memory, disk, redis (with a near
// cache), a partitioned cluster (replicas = 2, near caches) and a replicated one. Each returns
// the nodes and a hash tag whose keys the first node does not own in a cluster, so that
// commands through it are forwarded.
func everyPlacement() map[string]func(t *testing.T) (nodes []*server.Server, tag string) {
	return map[string]func(t *testing.T) (nodes []*server.Server, tag string){
		"memory": func(t *testing.T) ([]*server.Server, string) {
			return []*server.Server{testnode.StartDefault(t)}, "{x}"
		},
		"disk": func(t *testing.T) ([]*server.Server, string) {
			cfg := testnode.Config()
			cfg.Store.Type, cfg.Store.DiskPath = "disk", filepath.Join(t.TempDir(), "vela.db")
			return []*server.Server{testnode.Start(t, cfg)}, "{x}"
		},
		"redis": func(t *testing.T) ([]*server.Server, string) {
			cfg := testnode.Config()
			cfg.Store.Type, cfg.Store.RedisURL = "redis", "redis://"+redistest.Start(t).Addr+"/0"
			cfg.NearCache.Enabled = true
			vela := testnode.Start(t, cfg)
			redistest.WaitFor(t, "the near cache to go live", vela.Node().NearCache().Live)
			return []*server.Server{vela}, "{x}"
		},
		"partitioned": func(t *testing.T) ([]*server.Server, string) {
			nodes := testnode.StartCluster(t, 3, func(_ int, cfg *config.Config) {
				cfg.Cluster.Replicas = 2
				cfg.NearCache.Enabled = true // a reader's copy of a changed key must go
			})
			testnode.WaitConverged(t, 10*time.Second, nodes...)
			// Keys another member owns: the command is sent there.
			return nodes, testnode.TagOwnedBy(t, nodes[0].Cluster().Owner, nodes[1].Cluster().Name())
		},
		"replicated": func(t *testing.T) ([]*server.Server, string) {
			nodes := testnode.StartReplicated(t, 3, nil)
			testnode.WaitReplicated(t, 10*time.Second, nodes...)
			cl := nodes[0].Replicated()
			return nodes, testnode.TagOwnedBy(t, cl.Owner, nodes[1].Replicated().Name())
		},
	}
}

// otherOwner returns a key whose owner in n's partitioned cluster is not tag's.
func otherOwner(n *server.Server, tag string) string {
	for _, cand := range []string{"p", "q", "r", "s", "u", "w", "y", "z", "0", "1", "2", "3"} {
		if n.Cluster().Owner([]byte(cand)) != n.Cluster().Owner([]byte(tag)) {
			return cand
		}
	}
	panic("every candidate key has the owner of " + tag)
}

// checkHolders checks that every member holding key in its own store (the key's holders in a
// partitioned cluster, every member when replicated, the one node otherwise) has want there
// ("": none has it).
func checkHolders(t *testing.T, nodes []*server.Server, key, want string) {
	t.Helper()
	if len(nodes) == 1 {
		return // one node: its replies say it all (and the redis store holds nothing itself)
	}
	holders := len(nodes)
	if cl := nodes[0].Cluster(); cl != nil {
		holders = len(cl.Holders([]byte(key)))
	}
	have := 0
	for _, n := range nodes {
		switch v := testnode.LocalValue(t, n, key); {
		case v == want && want != "":
			have++
		case v != "" && v != want:
			t.Errorf("a member holds %q = %q, want %q", key, v, want)
		}
	}
	if want != "" && have != holders {
		t.Errorf("%d members hold %q = %q, want %d", have, key, want, holders)
	}
}

// TestRenameCountsLikeRedis: RENAME and RENAMENX count no hit or miss, COPY counts its read of
// the source, as in Redis (INFO keyspace_hits and keyspace_misses after the same commands).
func TestRenameCountsLikeRedis(t *testing.T) {
	counts := func(addr string) []string {
		c := respclient.Dial(t, addr)
		c.Do("FLUSHALL").OK()
		c.Do("CONFIG", "RESETSTAT").OK()
		for _, cmd := range [][]any{
			{"SET", "a", "1"}, {"RENAME", "a", "b"}, {"RENAME", "a", "b"}, {"RENAMENX", "b", "c"},
			{"SET", "d", "2"}, {"RENAMENX", "c", "d"}, {"COPY", "c", "e"}, {"COPY", "nosuch", "e"},
			{"COPY", "c", "e"}, {"COPY", "c", "e", "REPLACE"},
		} {
			c.Do(cmd...)
		}
		return regexp.MustCompile(`keyspace_(hits|misses):\d+`).FindAllString(c.Do("INFO", "stats").Value.Text(), -1)
	}
	want, got := counts(redistest.Start(t).Addr), counts(testnode.StartDefault(t).Addr())
	if len(want) != 2 || !slices.Equal(want, got) {
		t.Errorf("after the same commands, Redis counts %q, Vela %q", want, got)
	}
}

// TestRenameIsAtomic: while clients rename one key back and forth between two names, a reader
// never sees both names or neither (RENAME runs with every other command held back, as EXEC).
func TestRenameIsAtomic(t *testing.T) {
	vela := testnode.StartDefault(t)
	respclient.Dial(t, vela.Addr()).Do("SET", "{m}a", "v").OK()
	done := make(chan struct{})
	var movers sync.WaitGroup
	for i := range 2 {
		movers.Add(1)
		go func() {
			defer movers.Done()
			c := respclient.Dial(t, vela.Addr())
			from, to := "{m}a", "{m}b"
			if i == 1 {
				from, to = to, from
			}
			for {
				select {
				case <-done:
					return
				default:
				}
				c.Send("RENAME", from, to) // "no such key" when the other mover has it
				if err := c.Flush(); err != nil {
					return
				}
				if _, _, err := c.Receive(); err != nil {
					return
				}
			}
		}()
	}
	r := respclient.Dial(t, vela.Addr())
	for range 3000 {
		v := r.Do("MGET", "{m}a", "{m}b").Value
		if len(v.Elems) != 2 || v.Elems[0].Null == v.Elems[1].Null {
			t.Errorf("MGET during RENAMEs: %v, want exactly one of the two names", v)
			break
		}
	}
	close(done)
	movers.Wait()
}
