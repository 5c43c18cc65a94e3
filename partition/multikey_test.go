package partition_test

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestMultiKeyCommandsOnEveryNode runs multi-key commands through every node of a 3-node
// cluster, with one copy of each key and with two: a node that holds none of the keys (with two
// copies, every group of keys leaves one node out) must still answer for them, and a command
// with a missing value is refused whole, writing nothing, however many owners its keys have.
// TAGINVALIDATE replies with the number of keys it deleted, not of copies.
func TestMultiKeyCommandsOnEveryNode(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run("replicas="+strconv.Itoa(replicas), func(t *testing.T) {
			nodes := testnode.StartCluster(t, 3, func(_ int, cfg *config.Config) { cfg.Cluster.Replicas = replicas })
			testnode.WaitConverged(t, 10*time.Second, nodes...)
			ctx := context.Background()
			c0 := client(t, nodes[0])
			var keys []string
			for i := range 10 {
				k := "{h}" + strconv.Itoa(i)
				keys = append(keys, k)
				if err := c0.Set(ctx, k, "v"+strconv.Itoa(i), 0).Err(); err != nil {
					t.Fatal(err)
				}
				if err := c0.Set(ctx, "key:"+strconv.Itoa(i), "v", 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range nodes {
				c := client(t, n)
				vals, err := c.MGet(ctx, keys...).Result()
				if err != nil {
					t.Fatalf("MGET through %s: %v", n.Addr(), err)
				}
				for i, v := range vals {
					if v != "v"+strconv.Itoa(i) {
						t.Fatalf("MGET through %s: %s = %v", n.Addr(), keys[i], v)
					}
				}
				for i := range 10 { // each key alone, named twice: its owners leave a node out
					k := "key:" + strconv.Itoa(i)
					if got, err := c.MGet(ctx, k, k).Result(); err != nil || got[0] != "v" || got[1] != "v" {
						t.Fatalf("MGET %s %s through %s = %v, %v", k, k, n.Addr(), got, err)
					}
					if got, err := c.Exists(ctx, k, k).Result(); err != nil || got != 2 {
						t.Fatalf("EXISTS %s %s through %s = %d, %v", k, k, n.Addr(), got, err)
					}
					if got, err := c.Touch(ctx, k, k).Result(); err != nil || got != 2 {
						t.Fatalf("TOUCH %s %s through %s = %d, %v", k, k, n.Addr(), got, err)
					}
				}
				for i := range 20 {
					if err := c0.Do(ctx, "SET", "tagged:"+strconv.Itoa(i), "v", "TAGS", "t", "u").Err(); err != nil {
						t.Fatal(err)
					}
				}
				if got, err := c.Do(ctx, "TAGINVALIDATE", "t", "u").Int64(); err != nil || got != 20 {
					t.Fatalf("TAGINVALIDATE through %s = %d, %v; want 20", n.Addr(), got, err)
				}
				if got := dbsize(t, c); got != 20 { // key:* and {h}*
					t.Fatalf("DBSIZE after TAGINVALIDATE through %s = %d, want 20", n.Addr(), got)
				}
				for _, cursor := range []string{"-1", "+0", "18446744073709551615", ""} { // as on one node
					if err := c.Do(ctx, "SCAN", cursor).Err(); err != nil {
						t.Fatalf("SCAN %q through %s: %v", cursor, n.Addr(), err)
					}
				}
				if err := c.Do(ctx, "SCAN", "1x").Err(); err == nil || err.Error() != "ERR invalid cursor" {
					t.Fatalf("SCAN 1x through %s: %v", n.Addr(), err)
				}
				for _, cmd := range []string{"MSET", "MSETNX"} {
					args := []any{cmd, "odd:1", "x", "odd:2", "y", "odd:3"}
					err := c.Do(ctx, args...).Err()
					if want := "ERR wrong number of arguments for '" + strings.ToLower(cmd) + "' command"; err == nil || err.Error() != want {
						t.Fatalf("%v through %s: %v, want %s", args, n.Addr(), err, want)
					}
					if got, err := c.Exists(ctx, "odd:1", "odd:2", "odd:3").Result(); err != nil || got != 0 {
						t.Fatalf("%v through %s wrote %d keys (%v)", args, n.Addr(), got, err)
					}
				}
			}
		})
	}
}

// TestPeersDoNotCountAsClients: a node whose clients fill max_clients still takes its peers'
// connections (a member joining then connects to it), so the cluster keeps serving its keys
// through every other node; a client beyond the limit is still refused.
func TestPeersDoNotCountAsClients(t *testing.T) {
	const maxClients = 3
	nodes := testnode.StartCluster(t, 2, func(_ int, cfg *config.Config) { cfg.MaxClients = maxClients })
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	full := nodes[1]
	for range maxClients { // fill the second node with idle clients
		c := client(t, full)
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	extra, err := net.Dial("tcp", full.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_ = extra.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = extra.Write([]byte("PING\r\n"))
	if line, err := bufio.NewReader(extra).ReadString('\n'); line != "-ERR max number of clients reached\r\n" {
		t.Fatalf("a client beyond max_clients: %q, %v", line, err)
	}
	_ = extra.Close()
	cfg := testnode.ClusterConfig("node-3", nodes[0].Cluster().GossipAddr())
	cfg.MaxClients = maxClients
	n3 := testnode.Start(t, cfg)
	testnode.WaitConverged(t, 10*time.Second, nodes[0], full, n3)
	c3 := client(t, n3)
	var owned int
	for i := 0; i < 200; i++ {
		k := "full:" + strconv.Itoa(i)
		if full.Cluster().Owner([]byte(k)) != full.Cluster().Name() {
			continue
		}
		owned++
		if err := c3.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s through node-3 (owner is the full node): %v", k, err)
		}
		if v, err := c3.Get(ctx, k).Result(); err != nil || v != "v" {
			t.Fatalf("GET %s through node-3: %q, %v", k, v, err)
		}
	}
	if owned == 0 {
		t.Fatal("the full node owns none of the keys")
	}
	if n, err := c3.DBSize(ctx).Result(); err != nil || n != int64(owned) {
		t.Fatalf("DBSIZE through node-3 = %d, %v; want %d", n, err, owned)
	}
}
