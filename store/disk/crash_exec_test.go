package disk_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/testproc"
)

// TestCrashKeepsTransactionsWhole runs the vela binary on the disk store while clients run
// transactions that each set ten keys of their own to one number (MULTI, ten SETs, an INCR,
// EXEC), kills it with SIGKILL in mid-stream and restarts it on the same file: each client's ten
// keys hold one number, the last acknowledged transaction's or the one in flight, never part of
// one and part of another, and its counter counts exactly the transactions that landed.
func TestCrashKeepsTransactionsWhole(t *testing.T) {
	bin := testproc.Build(t)
	path := filepath.Join(t.TempDir(), "vela.db")
	p := testproc.Start(t, bin, "-store.type", "disk", "-store.disk.path", path)

	const clients, keys = 6, 10
	acked := make([]int, clients) // last acknowledged transaction of each client
	var total atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := redis.NewClient(&redis.Options{Addr: p.Addr, MaxRetries: -1, PoolSize: 1,
				DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
			defer rc.Close()
			ctx := context.Background()
			for i := 1; ; i++ {
				_, err := rc.TxPipelined(ctx, func(tx redis.Pipeliner) error {
					for k := range keys {
						tx.Set(ctx, fmt.Sprintf("t%d:k%d", c, k), i, 0)
					}
					tx.Incr(ctx, fmt.Sprintf("t%d:n", c))
					return nil
				})
				if err != nil {
					return // the server is gone: transaction i may or may not have landed
				}
				acked[c] = i
				total.Add(1)
			}
		}()
	}
	killOnceAcked(p, &total, 1500, &wg)
	if total.Load() < 300 {
		t.Fatalf("only %d transactions acknowledged before the kill", total.Load())
	}
	t.Logf("killed after %d acknowledged transactions", total.Load())

	p2 := testproc.Start(t, bin, "-store.type", "disk", "-store.disk.path", path)
	rc := redis.NewClient(&redis.Options{Addr: p2.Addr, MaxRetries: -1})
	defer rc.Close()
	ctx := context.Background()
	for c := range clients {
		names := []string{fmt.Sprintf("t%d:n", c)}
		for k := range keys {
			names = append(names, fmt.Sprintf("t%d:k%d", c, k))
		}
		vals, err := rc.MGet(ctx, names...).Result()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(fmt.Sprint(vals[0]))
		if n != acked[c] && n != acked[c]+1 {
			t.Errorf("client %d: %d transactions landed, %d acknowledged", c, n, acked[c])
		}
		for k, v := range vals[1:] {
			if got := fmt.Sprint(v); got != strconv.Itoa(n) {
				t.Errorf("client %d: key %s = %s after %d transactions (%v): a transaction landed in part", c, names[k+1], got, n, vals)
				break
			}
		}
	}
}
