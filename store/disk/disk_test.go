package disk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.uber.org/goleak"

	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/store/disk"
	"github.com/vela-cache/vela/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, path string) *disk.Store {
	t.Helper()
	s, err := disk.Open(disk.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "vela.db"))
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vela.db")
	ctx := context.Background()
	s, err := disk.Open(disk.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	far := time.Now().Add(time.Hour).UnixMilli()
	mustDo(t, s, "plain", store.Op{Kind: store.Set, Value: []byte("v1")})
	mustDo(t, s, "ttl", store.Op{Kind: store.Set, Value: []byte("v2"), TTL: store.TTLSet, ExpireAt: far})
	mustDo(t, s, "tagged", store.Op{Kind: store.Set, Value: []byte("v3"), Tags: [][]byte{[]byte("t")}})
	mustDo(t, s, "short", store.Op{Kind: store.Set, Value: []byte("v4"), TTL: store.TTLSet, ExpireAt: time.Now().Add(100 * time.Millisecond).UnixMilli()})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Do(ctx, []byte("plain"), store.Op{Kind: store.Get}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	if _, err := s.Do(ctx, []byte("plain"), store.Op{Kind: store.Set}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("set after close: %v", err)
	}
	time.Sleep(200 * time.Millisecond)

	s = open(t, path)
	if res := mustDo(t, s, "plain", store.Op{Kind: store.Get}); string(res.Value) != "v1" {
		t.Fatalf("plain = %q", res.Value)
	}
	if res := mustDo(t, s, "ttl", store.Op{Kind: store.Inspect}); res.ExpireAt != far {
		t.Fatalf("ttl expiry = %d, want %d", res.ExpireAt, far)
	}
	if res := mustDo(t, s, "short", store.Op{Kind: store.Get}); res.Found {
		t.Fatal("a key that expired while the store was closed is back")
	}
	if n, _ := s.Len(ctx); n != 3 {
		t.Fatalf("len after reopen = %d, want 3", n)
	}
	if n, _ := s.Expires(ctx); n != 1 {
		t.Fatalf("expires after reopen = %d, want 1", n)
	}
	keys, err := s.InvalidateTags(ctx, [][]byte{[]byte("t")})
	if err != nil || len(keys) != 1 || string(keys[0]) != "tagged" {
		t.Fatalf("invalidate after reopen = %q %v", keys, err)
	}
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after reopen removed %d (%v), want 1", n, err)
	}
}

func TestLimits(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "vela.db"))
	long := bytes.Repeat([]byte("k"), 40000)
	if _, err := s.Do(context.Background(), long, store.Op{Kind: store.Set, Value: []byte("v")}); !errors.Is(err, disk.ErrKeyTooLong) {
		t.Fatalf("long key: %v", err)
	}
	tag := bytes.Repeat([]byte("t"), 32760)
	if _, err := s.Do(context.Background(), []byte("key"), store.Op{Kind: store.Set, Value: []byte("v"), Tags: [][]byte{tag}}); !errors.Is(err, disk.ErrKeyTooLong) {
		t.Fatalf("long tag: %v", err)
	}
	// A key at the limit works.
	ok := bytes.Repeat([]byte("k"), 32760)
	if _, err := s.Do(context.Background(), ok, store.Op{Kind: store.Set, Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if res := mustDo(t, s, string(ok), store.Op{Kind: store.Get}); string(res.Value) != "v" {
		t.Fatal("long key lost")
	}
}

func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vela.db")
	open(t, path)
	if _, err := disk.Open(disk.Config{Path: path}); err == nil {
		t.Fatal("a second open of a locked file succeeded")
	}
}

func mustDo(t *testing.T, s store.Store, key string, op store.Op) store.Result {
	t.Helper()
	res, err := s.Do(context.Background(), []byte(key), op)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestReplayStagingLog copies the file while writes are still in the staging log (a crash-
// consistent image: every acknowledged write has been committed with fsync) and opens the copy:
// the log is moved into place at open, with values, expiries, tags and deletions intact.
func TestReplayStagingLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vela.db")
	s, err := disk.Open(disk.Config{Path: path, MoveInterval: time.Hour, MaxStaged: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	far := time.Now().Add(time.Hour).UnixMilli()
	for i := range 200 {
		mustDo(t, s, fmt.Sprintf("k%d", i), store.Op{Kind: store.Set, Value: []byte(fmt.Sprint(i)), TTL: store.TTLSet, ExpireAt: far + int64(i), Tags: [][]byte{[]byte(fmt.Sprintf("t%d", i%3))}})
	}
	for i := range 50 {
		mustDo(t, s, fmt.Sprintf("k%d", i), store.Op{Kind: store.Delete})
	}
	mustDo(t, s, "k60", store.Op{Kind: store.Set, Value: []byte("plain")}) // drops expiry and tags
	// Reads see the staged writes.
	if res := mustDo(t, s, "k100", store.Op{Kind: store.Get}); string(res.Value) != "100" {
		t.Fatalf("staged k100 = %q", res.Value)
	}
	if res := mustDo(t, s, "k10", store.Op{Kind: store.Get}); res.Found {
		t.Fatal("staged delete not seen")
	}
	// The image on disk, as a SIGKILL would leave it.
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(copyPath, img, 0o600); err != nil {
		t.Fatal(err)
	}
	c := open(t, copyPath)
	ctx := context.Background()
	if n, _ := c.Len(ctx); n != 150 {
		t.Fatalf("len after replay = %d, want 150", n)
	}
	if res := mustDo(t, c, "k100", store.Op{Kind: store.Inspect}); !res.Found || res.ExpireAt != far+100 {
		t.Fatalf("k100 after replay = %+v", res)
	}
	if res := mustDo(t, c, "k60", store.Op{Kind: store.Inspect}); !res.Found || res.ExpireAt != 0 {
		t.Fatalf("k60 after replay = %+v", res)
	}
	keys, err := c.InvalidateTags(ctx, [][]byte{[]byte("t0")})
	if err != nil {
		t.Fatal(err)
	}
	// k0..k199 with i%3 == 0, minus the deleted k0..k49, minus k60 (retagged by the plain write).
	want := 0
	for i := 50; i < 200; i++ {
		if i%3 == 0 && i != 60 {
			want++
		}
	}
	if len(keys) != want {
		t.Fatalf("invalidate t0 after replay deleted %d keys, want %d", len(keys), want)
	}
}

// TestDoBatchSharesCommits deletes many keys with one DoBatch (DEL k1 k2 …): every key's result
// comes back in order, a key named twice is deleted once, and the writes share transactions
// instead of taking one commit each.
func TestDoBatchSharesCommits(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "vela.db"))
	ctx := context.Background()
	const n = 1000
	var pairs []store.KV
	var keys [][]byte
	for i := range n {
		k := []byte(fmt.Sprintf("k%d", i))
		pairs = append(pairs, store.KV{Key: k, Value: []byte("v")})
		if i%2 == 0 { // every other key exists
			keys = append(keys, k, []byte(fmt.Sprintf("missing%d", i)))
		}
	}
	if _, err := s.SetMulti(ctx, pairs, 0, false); err != nil {
		t.Fatal(err)
	}
	keys = append(keys, []byte("k0")) // named twice: already deleted
	before := s.Commits()
	results, err := s.DoBatch(ctx, keys, store.Op{Kind: store.Delete})
	if err != nil {
		t.Fatal(err)
	}
	commits := s.Commits() - before
	if len(results) != len(keys) {
		t.Fatalf("%d results for %d keys", len(results), len(keys))
	}
	for i, res := range results {
		if want := i%2 == 0 && i != len(keys)-1; res.Done != want {
			t.Errorf("key %s: deleted %v, want %v", keys[i], res.Done, want)
		}
	}
	if got, _ := s.Len(ctx); got != n/2 {
		t.Errorf("Len = %d after deleting half of %d keys", got, n)
	}
	if commits >= uint64(len(keys))/10 {
		t.Errorf("%d deletes took %d commits: they did not share transactions", len(keys), commits)
	}
	t.Logf("%d deletes, %d commits", len(keys), commits)
}

// TestScanContinuesOlderCursor: a cursor from a build before store.CursorBits (a whole key hash)
// still goes on from where it points, and the cursors after it are the new, shorter kind.
func TestScanContinuesOlderCursor(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "vela.db"))
	ctx := context.Background()
	const old = uint64(1) << 63
	want := map[string]bool{}
	for i := range 300 {
		k := fmt.Sprintf("k%d", i)
		if _, err := s.Do(ctx, []byte(k), store.Op{Kind: store.Set, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		if xxhash.Sum64String(k) >= old {
			want[k] = true
		}
	}
	got := map[string]bool{}
	for cursor := old; ; {
		keys, next, err := s.Scan(ctx, cursor, nil, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			got[string(k)] = true
		}
		if next == 0 {
			break
		}
		if next >= 1<<store.CursorBits {
			t.Fatalf("next cursor %d is of the old kind", next)
		}
		cursor = next
	}
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("from the old cursor: %d keys, want %d", len(got), len(want))
	}
	for k := range want {
		if !got[k] {
			t.Fatalf("missed %s", k)
		}
	}
}

// TestReopenKeepsEncoding: how a value was written (OBJECT ENCODING) survives a restart, beside
// its tags and an expiry as late as Redis allows (the record's flag bit must not eat into it).
func TestReopenKeepsEncoding(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vela.db")
	ctx := context.Background()
	s, err := disk.Open(disk.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	latest := int64(1<<63 - 1)
	mustDo(t, s, "raw", store.Op{Kind: store.Set, Value: []byte("12"), Tags: [][]byte{[]byte("t")}, TTL: store.TTLSet, ExpireAt: latest})
	mustDo(t, s, "raw", store.Op{Kind: store.Append, Value: []byte("3")})
	mustDo(t, s, "float", store.Op{Kind: store.IncrByFloat, Value: []byte("3")})
	mustDo(t, s, "int", store.Op{Kind: store.Set, Value: []byte("4")})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	for key, want := range map[string]string{"raw": "raw", "float": "embstr", "int": "int"} {
		obj, found, err := s.Object(ctx, []byte(key), store.ObjectEncoding)
		if err != nil || !found || obj.Encoding != want {
			t.Errorf("%s after reopen: %q (found %v, %v), want %s", key, obj.Encoding, found, err, want)
		}
	}
	if res := mustDo(t, s, "raw", store.Op{Kind: store.Get, WithExpiry: true}); string(res.Value) != "123" || res.ExpireAt != latest {
		t.Errorf("raw after reopen: %q expiring at %d, want \"123\" at %d", res.Value, res.ExpireAt, latest)
	}
	if tags, err := s.KeyTags(ctx, []byte("raw")); err != nil || len(tags) != 1 || string(tags[0]) != "t" {
		t.Errorf("raw's tags after reopen: %q, %v", tags, err)
	}
}
