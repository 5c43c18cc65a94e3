package memory_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/stats"
	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/store/memory"
)

// TestMemoryPerKeyVsRedis loads the same 1M keys (16-byte names, 64-byte values) into a memory
// store and into a real redis-server, and compares the bytes each needs per key: Vela's live heap
// growth (after a full GC, the empty store's fixed slot array included) against Redis's
// used_memory growth. It fails above 1.2 × Redis. Heavy: run it with
//
//	VELA_MEMBENCH=1 go test -run TestMemoryPerKeyVsRedis -v ./store/memory/
func TestMemoryPerKeyVsRedis(t *testing.T) {
	if os.Getenv("VELA_MEMBENCH") == "" {
		t.Skip("set VELA_MEMBENCH=1 to compare memory per key with redis-server")
	}
	const keys = 1_000_000
	value := []byte(strings.Repeat("x", 64))
	key := func(i int) string { return fmt.Sprintf("key:%012d", i) }

	ctx := context.Background()
	before := liveHeap()
	s := memory.New(memory.Config{Stats: &stats.Stats{}})
	for i := 0; i < keys; i++ {
		if _, err := s.Do(ctx, []byte(key(i)), store.Op{Kind: store.Set, Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	vela := float64(liveHeap()-before) / keys
	_, accounted := s.Usage()
	runtime.KeepAlive(s)
	_ = s.Close()

	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	usedBefore := usedMemory(t, c)
	for i := 0; i < keys; i += 1000 {
		pipe := c.Pipeline()
		for j := i; j < i+1000; j++ {
			pipe.Set(ctx, key(j), value, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rds := float64(usedMemory(t, c)-usedBefore) / keys

	t.Logf("1M keys, 16-byte names, 64-byte values: Vela %.1f B/key (store accounts %.1f), redis-server %.1f B/key used_memory; ratio %.2f",
		vela, float64(accounted)/keys, rds, vela/rds)
	if vela > 1.2*rds {
		t.Fatalf("Vela needs %.1f bytes per key, more than 1.2 × Redis's %.1f", vela, rds)
	}
}

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

func usedMemory(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no used_memory in INFO")
	return 0
}
