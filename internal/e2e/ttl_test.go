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

// pipeline sends n commands built by cmd in batches and requires each reply to be want.
func pipeline(t *testing.T, c *respclient.Conn, n int, cmd func(i int) []any, want string) {
	t.Helper()
	const batch = 1000
	for i := 0; i < n; i += batch {
		for j := i; j < min(i+batch, n); j++ {
			c.Send(cmd(j)...)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		for j := i; j < min(i+batch, n); j++ {
			if _, raw, err := c.Receive(); err != nil || string(raw) != want {
				t.Fatalf("command %d: %q, %v; want %q", j, raw, err, want)
			}
		}
	}
}

// TestTTLSweepReleases: 100,000 keys get a 200 ms TTL and are never read again. The background
// sweep alone must remove every one within 2 × sweep_interval of their expiry (DBSIZE 0 and no
// entry left in the store), and the heap must shrink back to near where it was before the load.
//
// The keys are written with a long TTL first, so that all of them are in memory when the loaded
// heap is measured however slow the machine is, then given the short TTL with PEXPIRE.
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
	pipeline(t, c, n, func(i int) []any { return []any{"SET", "ttl:" + strconv.Itoa(i), value, "PX", 3_600_000} }, "+OK\r\n")
	loaded := heapInUse()
	if held := stored(st); held != n {
		t.Fatalf("%d keys stored, want %d", held, n)
	}
	start := time.Now()
	pipeline(t, c, n, func(i int) []any { return []any{"PEXPIRE", "ttl:" + strconv.Itoa(i), int(ttl / time.Millisecond)} }, ":1\r\n")
	t.Logf("%d keys: heap %d -> %d bytes; short TTL set in %v", n, baseline, loaded, time.Since(start))

	// The last key expires ttl after the last PEXPIRE; the sweep must have removed it within two
	// sweep intervals of that.
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
	// The keys took about 16 MB. What may stay is allocator slack, a few hundred KB; 10% of
	// the load is a generous bound that keeping the values (100 bytes each: 10 MB) or the slot
	// tables (a few MB for 100,000 keys) would exceed.
	if kept > grown/10 {
		t.Fatalf("heap still holds %d of the %d bytes the expired keys took", kept, grown)
	}
}
