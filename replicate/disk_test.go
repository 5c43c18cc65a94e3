package replicate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/store/disk"
)

// On the disk store, a client's pipelined SETs through a member commit together, as on one node,
// instead of one commit each (each used to wait for its own before its copies left), and still
// reach every member in order: the last write of a key wins everywhere, and a GET pipelined
// behind a SET reads it.
func TestReplicatedDiskPipelinedWritesShareCommits(t *testing.T) {
	dir := t.TempDir()
	nodes := testnode.StartReplicated(t, 2, func(i int, cfg *config.Config) {
		cfg.Store.Type = "disk"
		cfg.Store.DiskPath = fmt.Sprintf("%s/m%d.db", dir, i)
	})
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	st, ok := nodes[0].Node().Store().(*disk.Store)
	if !ok {
		t.Fatalf("store is %T", nodes[0].Node().Store())
	}
	ctx := context.Background()
	c := client(t, nodes[0])
	const n = 500
	before := st.Commits()
	type read struct {
		cmd  *redis.StringCmd
		want string
	}
	var reads []read
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			k := fmt.Sprint("k", i%100)
			p.Set(ctx, k, fmt.Sprint("v", i), 0)
			if i%50 == 49 {
				reads = append(reads, read{p.Get(ctx, k), fmt.Sprint("v", i)})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	commits := st.Commits() - before
	t.Logf("%d pipelined SETs through a member: %d commits", n, commits)
	if commits > n/4 {
		t.Errorf("%d pipelined SETs took %d commits: they do not share them", n, commits)
	}
	for _, r := range reads {
		if v, err := r.cmd.Result(); err != nil || v != r.want {
			t.Errorf("%v right behind its SET = %q, %v; want %q", r.cmd.Args(), v, err, r.want)
		}
	}
	for i := range 100 {
		want := fmt.Sprint("v", n-100+i)
		for _, m := range nodes {
			if got := testnode.LocalValue(t, m, fmt.Sprint("k", i)); got != want {
				t.Errorf("%s holds k%d = %q, want the last write %q", m.Replicated().Name(), i, got, want)
			}
		}
	}
}

// On the disk store, a transaction commits on the member that decides its keys as one unit
// (store.Grouper), reading each written key's state for its copy inside that unit instead of
// committing before each read, and its copies reach the other member.
func TestReplicatedDiskTransactionCommitsOnce(t *testing.T) {
	dir := t.TempDir()
	nodes := testnode.StartReplicated(t, 2, func(i int, cfg *config.Config) {
		cfg.Store.Type = "disk"
		cfg.Store.DiskPath = fmt.Sprintf("%s/m%d.db", dir, i)
	})
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	ctx := context.Background()
	c := client(t, nodes[0])
	owners, err := c.Do(ctx, "VELA", "OWNER", "{t}:k0").StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	var st *disk.Store
	for _, m := range nodes {
		if m.Replicated().Name() == owners[0] {
			st = m.Node().Store().(*disk.Store)
		}
	}
	if st == nil {
		t.Fatalf("no member named %q", owners[0])
	}
	before := st.Commits()
	_, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 50 {
			p.Set(ctx, fmt.Sprint("{t}:k", i), i, 0)
		}
		p.Incr(ctx, "{t}:k0")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Commits() - before; n != 1 {
		t.Errorf("a transaction of 51 writes took %d commits on the member deciding it, want 1", n)
	}
	if st.GroupsSplit() != 0 {
		t.Errorf("the transaction was committed in %d parts", st.GroupsSplit()+1)
	}
	for _, m := range nodes {
		eventually(t, 5*time.Second, func() string {
			if a, b := testnode.LocalValue(t, m, "{t}:k0"), testnode.LocalValue(t, m, "{t}:k49"); a != "1" || b != "49" {
				return fmt.Sprintf("%s holds {t}:k0 = %q, {t}:k49 = %q; want 1 and 49", m.Replicated().Name(), a, b)
			}
			return ""
		})
	}
}
