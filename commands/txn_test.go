package commands_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestWatchIndexEmptiesOnClose: clients that WATCH keys and close, some of them inside MULTI,
// leave nothing in the node's watch index, whether an event loop or a goroutine served them.
func TestWatchIndexEmptiesOnClose(t *testing.T) {
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprint("loops-", loops), func(t *testing.T) {
			cfg := testnode.Config()
			cfg.EventLoops = loops
			srv := testnode.Start(t, cfg)
			for i := range 50 {
				c := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 1})
				if err := c.Do(ctx, "WATCH", "a", "b", fmt.Sprint("k", i)).Err(); err != nil {
					t.Fatal(err)
				}
				if i%2 == 0 {
					c.Do(ctx, "MULTI")
					c.Do(ctx, "SET", "a", "1")
				}
				_ = c.Close()
			}
			for deadline := time.Now().Add(5 * time.Second); commands.WatchedCount(srv.Node()) != 0; {
				if time.Now().After(deadline) {
					t.Fatalf("%d watches left after every client closed", commands.WatchedCount(srv.Node()))
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestExecIsolatedFromPipelinedSets: on the disk store a pipelined SET leaves the gate before
// its commit; EXEC must still not see it land between two of its own commands (30 GETs of one
// key in a transaction all answer the same value while another client pipelines SETs of it).
func TestExecIsolatedFromPipelinedSets(t *testing.T) {
	cfg := testnode.Config()
	cfg.Store.Type = "disk"
	cfg.Store.DiskPath = t.TempDir() + "/vela.db"
	srv := testnode.Start(t, cfg)
	w := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 1})
	defer w.Close()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = w.Pipelined(ctx, func(p redis.Pipeliner) error {
				for j := range 64 {
					p.Set(ctx, "k", i*64+j, 0)
				}
				return nil
			})
		}
	}()
	defer func() { close(stop); <-done }()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 1})
	defer c.Close()
	for n := range 300 {
		cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for range 30 {
				p.Get(ctx, "k")
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		first := cmds[0].(*redis.StringCmd).Val()
		for _, cmd := range cmds[1:] {
			if v := cmd.(*redis.StringCmd).Val(); v != first {
				t.Fatalf("transaction %d: GET k answered %q, then %q", n, first, v)
			}
		}
	}
}

// TestFetchLockIsolatedFromExec: a transaction deletes a key and sets it again; FETCHLOCKs of
// the key by other clients meanwhile must always find it (HIT), never the moment between the
// two (LOCKED: the key was missing).
func TestFetchLockIsolatedFromExec(t *testing.T) {
	srv := testnode.Start(t, testnode.Config())
	w := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 1})
	defer w.Close()
	if err := w.Set(ctx, "fl", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			r := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 1})
			defer r.Close()
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				v, err := r.Do(ctx, "FETCHLOCK", "fl", "TIMEOUT", "0").Slice()
				if err != nil || len(v) == 0 || v[0] != "HIT" {
					errs <- fmt.Errorf("FETCHLOCK fl during transactions = %v, %v; want HIT", v, err)
					return
				}
			}
		}()
	}
	for i := 0; i < 3000 && len(errs) == 0; i++ {
		_, err := w.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, "fl")
			p.Set(ctx, "fl", "v", 0)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
