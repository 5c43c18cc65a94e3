package e2e_test

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/store/memory"
)

// stored returns the entries the store holds, live or expired but not yet swept.
func stored(st *memory.Store) int64 {
	keys, _ := st.Usage()
	return keys
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestTTLSweepReleases loads 100,000 keys with a 200 ms TTL and never reads them: the background
// sweep alone must remove every one within 2 × sweep_interval of their expiry (DBSIZE 0 and no
// entry left in the store), and the heap must shrink back to near where it was before the load.
func TestTTLSweepReleases(t *testing.T) {
	const (
		n     = 100_000
		ttl   = 200 * time.Millisecond
		sweep = 300 * time.Millisecond
	)
	cfg := testnode.Config()
	cfg.SweepInterval = sweep
	srv := testnode.Start(t, cfg)
	st, ok := srv.Node().Store().(*memory.Store)
	if !ok {
		t.Fatalf("store is %T, want *memory.Store", srv.Node().Store())
	}
	c := respclient.Dial(t, srv.Addr())
	c.Do("PING") // the connection's own buffers are part of the baseline
	baseline := heapInUse()

	value := make([]byte, 100)
	start := time.Now()
	const batch = 1000
	for i := 0; i < n; i += batch {
		for j := i; j < i+batch; j++ {
			c.Send("SET", "ttl:"+strconv.Itoa(j), value, "PX", strconv.Itoa(int(ttl/time.Millisecond)))
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		for j := i; j < i+batch; j++ {
			if v, _, err := c.Receive(); err != nil || v.Str != "OK" {
				t.Fatalf("SET %d: %v, %v", j, v, err)
			}
		}
	}
	loaded := heapInUse()
	held := stored(st)
	if held == 0 {
		t.Fatalf("the keys expired while loading (took %v); nothing to sweep", time.Since(start))
	}
	t.Logf("loaded %d keys in %v (%d still stored); heap %d -> %d bytes", n, time.Since(start), held,
		baseline, loaded)

	// The last key expires at most ttl after the load ended; the sweep must have removed it
	// within two sweep intervals of that.
	expiredBy := time.Now().Add(ttl)
	deadline := expiredBy.Add(2 * sweep)
	for stored(st) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	left := stored(st)
	t.Logf("store emptied %v after the last expiry (%d left)", time.Since(expiredBy).Round(time.Millisecond), left)
	if left != 0 {
		t.Fatalf("%d of %d expired keys still stored %v after they expired (sweep_interval %v)",
			left, n, 2*sweep, sweep)
	}
	c.Do("DBSIZE").Int(0)

	after := heapInUse()
	grown := int64(loaded) - int64(baseline)
	kept := int64(after) - int64(baseline)
	t.Logf("heap after the sweep: %d bytes (%d of the %d the keys took are still held)", after, kept, grown)
	// The keys took about 20 MB (less when the sweep already ran during a slow load). What may
	// stay is allocator slack and a few rebuilt slot maps, a few hundred KB; 2 MB is a generous
	// bound that keeping the values (100 bytes each: 10 MB) or the slot maps' buckets (about
	// 8 MB for 100,000 keys) would exceed.
	if kept > 2<<20 {
		t.Fatalf("heap still holds %d of the %d bytes the expired keys took", kept, grown)
	}
}
