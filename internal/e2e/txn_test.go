package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
	"github.com/vela-cache/vela/store/disk"
)

// txTargets returns Vela on the memory and disk stores, and a real Redis, for the transaction
// tests.
func txTargets(t *testing.T) map[string]string {
	disk := testnode.Config()
	disk.Store.Type = "disk"
	disk.Store.DiskPath = t.TempDir() + "/vela.db"
	return map[string]string{
		"vela-memory": testnode.StartDefault(t).Addr(),
		"vela-disk":   testnode.Start(t, disk).Addr(),
		"redis":       redistest.Start(t, "--databases", "1").Addr,
	}
}

// redisStoreNode starts Vela on the redis store, in front of a redis-server of its own.
func redisStoreNode(t *testing.T, adjust func(cfg *config.Config)) string {
	cfg := testnode.Config()
	cfg.Store.Type = "redis"
	cfg.Store.RedisURL = "redis://" + redistest.Start(t).Addr + "/0"
	if adjust != nil {
		adjust(&cfg)
	}
	return testnode.Start(t, cfg).Addr()
}

// TestOptimisticIncrements is the check-and-set loop of Redis's transaction documentation,
// through go-redis's Watch: 9 clients each add 1 to a counter 30 times, reading it, then writing
// the sum in MULTI/EXEC, and retrying when EXEC refuses because another client wrote first. No
// increment may be lost, and some EXECs must have been refused (the clients did collide). In the
// partitioned cluster the clients are spread over the three members: the owner's watch for
// its own clients, and for the others' through it, are broken by writes through any member.
func TestOptimisticIncrements(t *testing.T) {
	targets := map[string][]string{}
	for name, addr := range txTargets(t) {
		targets[name] = []string{addr}
	}
	targets["vela-redis-store"] = []string{redisStoreNode(t, nil)} // the transaction runs in Redis
	targets["vela-redis-store-near"] = []string{redisStoreNode(t, func(cfg *config.Config) { cfg.NearCache.Enabled = true })}
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	for _, n := range nodes {
		targets["vela-partitioned"] = append(targets["vela-partitioned"], n.Addr())
	}
	for name, addrs := range targets {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const clients, each = 9, 30
			var refused atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := redis.NewClient(&redis.Options{Addr: addrs[i%len(addrs)], PoolSize: 1})
					defer c.Close()
					for range each {
						for {
							err := c.Watch(ctx, func(tx *redis.Tx) error {
								n, err := tx.Get(ctx, "counter").Int()
								if err != nil && !errors.Is(err, redis.Nil) {
									return err
								}
								_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
									p.Set(ctx, "counter", n+1, 0)
									return nil
								})
								return err
							}, "counter")
							if errors.Is(err, redis.TxFailedErr) {
								refused.Add(1)
								continue
							}
							if err != nil {
								errs <- err
								return
							}
							break
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for _, addr := range addrs {
				c := redis.NewClient(&redis.Options{Addr: addr})
				n, err := c.Get(ctx, "counter").Int()
				_ = c.Close()
				if err != nil || n != clients*each {
					t.Fatalf("counter through %s = %d (%v), want %d", addr, n, err, clients*each)
				}
			}
			if refused.Load() == 0 {
				t.Error("no EXEC was refused: the clients never collided")
			}
			t.Logf("%d increments, %d EXECs refused and retried", clients*each, refused.Load())
		})
	}
}

// TestTransactionIsolation runs transactions that move units between two keys while other
// clients read both keys with MGET and write a third: a reader must never see a transaction
// half done (the sum of the two keys is always 0), and every transaction's replies come back
// in order in one array.
func TestTransactionIsolation(t *testing.T) {
	for name, addr := range txTargets(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 8})
			defer c.Close()
			must(t, "MSET", c.MSet(ctx, "x", 0, "y", 0).Err())
			var stop atomic.Bool
			var wg, movers sync.WaitGroup
			errs := make(chan error, 16)
			for i := range 3 {
				movers.Add(1)
				go func() {
					defer movers.Done()
					for j := range 300 {
						cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
							p.IncrBy(ctx, "x", int64(j%7+1))
							p.Set(ctx, fmt.Sprintf("mover:%d", i), j, 0)
							p.DecrBy(ctx, "y", int64(j%7+1))
							return nil
						})
						if err != nil || len(cmds) != 3 {
							errs <- fmt.Errorf("transaction: %v (%d replies)", err, len(cmds))
							return
						}
						if x, y := cmds[0].(*redis.IntCmd).Val(), cmds[2].(*redis.IntCmd).Val(); x+y != 0 {
							errs <- fmt.Errorf("inside one transaction x=%d y=%d", x, y)
							return
						}
					}
				}()
			}
			var reads atomic.Int64
			for range 2 { // readers
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() {
						vals, err := c.MGet(ctx, "x", "y").Result()
						if err != nil {
							errs <- err
							return
						}
						x, _ := strconv.Atoi(vals[0].(string))
						y, _ := strconv.Atoi(vals[1].(string))
						if x+y != 0 {
							errs <- fmt.Errorf("a reader saw x=%d y=%d: half a transaction", x, y)
							return
						}
						reads.Add(1)
					}
				}()
			}
			for range 900 { // unrelated writes beside the transactions
				if err := c.Set(ctx, "other", "v", 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			movers.Wait()
			stop.Store(true)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			t.Logf("%d consistent reads", reads.Load())
		})
	}
}

// TestDiskTransactionSharesCommits: the writes of one EXEC on the disk store are committed in one
// transaction (store.Grouper): not one fsync each while every other client of the node waits for
// the transaction, and a crash keeps all of them or none (TestCrashKeepsTransactionsWhole).
func TestDiskTransactionSharesCommits(t *testing.T) {
	cfg := testnode.Config()
	cfg.Store.Type = "disk"
	cfg.Store.DiskPath = t.TempDir() + "/vela.db"
	srv := testnode.Start(t, cfg)
	st, ok := srv.Store().(*disk.Store)
	if !ok {
		t.Fatalf("store is %T", srv.Store())
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	ctx := context.Background()
	before := st.Commits()
	cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 200 {
			p.Set(ctx, fmt.Sprintf("k%d", i), i, 0)
		}
		p.Get(ctx, "k199")
		p.Incr(ctx, "k0")
		return nil
	})
	if err != nil || len(cmds) != 202 || cmds[200].(*redis.StringCmd).Val() != "199" ||
		cmds[201].(*redis.IntCmd).Val() != 1 {
		t.Fatalf("transaction: %v, %d replies", err, len(cmds))
	}
	// 201 when each write waited for its commit; 1 to 10 when they were queued together.
	if n := st.Commits() - before; n != 1 {
		t.Errorf("201 writes in one EXEC took %d commits, want 1", n)
	}
}

// TestTransactionsRefused: where Vela cannot run a transaction as Redis would (the redis store
// with default_ttl), MULTI and WATCH answer an error that says why, and the commands sent after
// a refused MULTI run as ordinary commands, as they would after any failed command.
func TestTransactionsRefused(t *testing.T) {
	// On the redis store transactions run in Redis, which would not apply default_ttl.
	c := redis.NewClient(&redis.Options{Addr: redisStoreNode(t, func(cfg *config.Config) { cfg.DefaultTTL = time.Hour })})
	defer c.Close()
	ctx := context.Background()
	const text = "ERR transactions (MULTI, WATCH) are not supported with store.type = redis and default_ttl set: they run in Redis, which would not apply it"
	for _, args := range [][]any{{"MULTI"}, {"WATCH", "k"}} {
		if err := c.Do(ctx, args...).Err(); err == nil || err.Error() != text {
			t.Errorf("%v: %v, want %q", args, err, text)
		}
	}
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "k", "v", 0)
		return nil
	})
	if err == nil || err.Error() != text {
		t.Errorf("TxPipelined: %v, want %q", err, text)
	}
	if err := c.Do(ctx, "EXEC").Err(); err == nil || err.Error() != "ERR EXEC without MULTI" {
		t.Errorf("EXEC: %v", err)
	}
}

// TestTransactionStress mixes transactions with everything else a node serves, on the memory
// store (event loops and goroutines) and the disk store: 6 clients for 3 seconds each send
// MULTI … EXEC of random commands, WATCH, pipelined batches, SET … TAGS and TAGINVALIDATE,
// FETCHLOCK/FETCHFILL, MGET and, rarely, FLUSHALL. Nothing may hang (every client must finish
// its last round well within the deadline), and no reply may be a protocol or connection
// error; the command-level errors (WRONGTYPE-free: only strings are written) are Redis's own.
func TestTransactionStress(t *testing.T) {
	disk := testnode.Config()
	disk.Store.Type = "disk"
	disk.Store.DiskPath = t.TempDir() + "/vela.db"
	loops := testnode.Config()
	loops.EventLoops = 2
	for name, cfg := range map[string]config.Config{"memory-loops": loops, "memory-goroutines": testnode.Config(), "disk": disk} {
		if name == "memory-goroutines" {
			cfg.EventLoops = 0
		}
		t.Run(name, func(t *testing.T) {
			stressTransactions(t, []string{testnode.Start(t, cfg).Addr()}, "")
		})
	}
}

// TestTransactionStressClusters is TestTransactionStress through the three members of a
// partitioned cluster keeping two copies of each key, and of a replicated cluster (memory and
// disk stores), on keys of
// one hash tag (one member runs every transaction; the others send theirs there), with the
// cluster-wide FLUSHALL and TAGINVALIDATE reaching every member.
func TestTransactionStressClusters(t *testing.T) {
	for name, start := range map[string]func() []*server.Server{
		"partitioned-replicas-2": func() []*server.Server {
			nodes := testnode.StartCluster(t, 3, func(_ int, cfg *config.Config) { cfg.Cluster.Replicas = 2 })
			testnode.WaitConverged(t, 10*time.Second, nodes...)
			return nodes
		},
		"replicated": func() []*server.Server {
			nodes := testnode.StartReplicated(t, 3, nil)
			testnode.WaitReplicated(t, 10*time.Second, nodes...)
			return nodes
		},
		"replicated-disk": func() []*server.Server {
			dir := t.TempDir()
			nodes := testnode.StartReplicated(t, 3, func(i int, cfg *config.Config) {
				cfg.Store.Type = "disk"
				cfg.Store.DiskPath = fmt.Sprintf("%s/m%d.db", dir, i)
			})
			testnode.WaitReplicated(t, 10*time.Second, nodes...)
			return nodes
		},
	} {
		t.Run(name, func(t *testing.T) {
			var addrs []string
			for _, n := range start() {
				addrs = append(addrs, n.Addr())
			}
			stressTransactions(t, addrs, "{s}")
		})
	}
}

// stressTransactions has 6 clients, dealt over addrs, each send for 3 seconds MULTI … EXEC of
// random commands, WATCH, pipelined batches, SET … TAGS and TAGINVALIDATE, FETCHLOCK/FETCHFILL,
// MGET and, rarely, FLUSHALL, on keys starting with prefix. Nothing may hang (every client must
// finish its last round well within the deadline), and no reply may be a protocol or connection
// error; the command-level errors (WRONGTYPE-free: only strings are written) are Redis's own.
func stressTransactions(t *testing.T, addrs []string, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	end := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	var rounds atomic.Int64
	ctr, fk := prefix+"ctr", prefix+"fk"
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redis.NewClient(&redis.Options{Addr: addrs[w%len(addrs)], PoolSize: 2, MaxRetries: -1})
			defer c.Close()
			key := func(i int) string { return fmt.Sprintf("%ss%d", prefix, (w+i)%5) }
			for i := 0; time.Now().Before(end); i++ {
				var err error
				switch i % 7 {
				case 0:
					_, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
						p.Incr(ctx, ctr)
						p.Set(ctx, key(i), i, 0)
						p.MGet(ctx, key(i), key(i+1))
						p.Do(ctx, "SET", key(i+2), "t", "TAGS", "tg")
						p.Del(ctx, key(i+3))
						return nil
					})
				case 1:
					err = c.Watch(ctx, func(tx *redis.Tx) error {
						v, _ := tx.Get(ctx, key(i)).Result()
						_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
							p.Set(ctx, key(i), v+"x", time.Minute)
							return nil
						})
						return err
					}, key(i))
					if errors.Is(err, redis.TxFailedErr) {
						err = nil
					}
				case 2:
					_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
						for j := range 20 {
							p.Set(ctx, key(j), j, 0)
							p.Get(ctx, key(j+1))
						}
						return nil
					})
				case 3:
					err = c.Do(ctx, "TAGINVALIDATE", "tg").Err()
				case 4:
					r, ferr := c.Do(ctx, "FETCHLOCK", fk, "TIMEOUT", "50", "LEASE", "200").Slice()
					err = ferr
					if ferr == nil && len(r) == 2 && r[0] == "LOCKED" {
						err = c.Do(ctx, "FETCHFILL", fk, r[1], "v", "PX", "30").Err()
					}
				case 5:
					err = c.MGet(ctx, key(0), key(1), key(2), ctr).Err()
				case 6:
					if i%5 == 0 {
						err = c.FlushAll(ctx).Err()
					}
				}
				if err != nil && !errors.Is(err, redis.Nil) && !strings.HasPrefix(err.Error(), "STALE") {
					errs <- fmt.Errorf("client %d round %d: %w", w, i, err)
					return
				}
				rounds.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("the clients did not finish before the deadline")
	}
	t.Logf("%d rounds", rounds.Load())
}
