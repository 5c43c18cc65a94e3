package disk_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vela-cache/vela/store"
)

// TestGroupCommitsOnce: a group's operations see one another (a GET and an INCR of keys SET
// earlier in the group, a DEL of one of them, a batch and an MSET), other callers see none of
// them before the group ends, and the whole group is one commit.
func TestGroupCommitsOnce(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "vela.db"))
	ctx := context.Background()
	mustDo(t, s, "before", store.Op{Kind: store.Set, Value: []byte("0")})
	commits := s.Commits()

	gctx, end := s.Group(ctx)
	for i := range 100 {
		if _, err := s.Do(gctx, []byte("k"+strconv.Itoa(i)), store.Op{Kind: store.Set, Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if call := s.Start(gctx, []byte("k0"), store.Op{Kind: store.Set, Value: []byte("x")}); call != nil {
		t.Fatal("Start took a group's SET onto the pipelined path")
	}
	if res, err := s.Do(gctx, []byte("k7"), store.Op{Kind: store.Get}); err != nil || string(res.Value) != "7" {
		t.Fatalf("GET in the group = %q, %v; want its own SET's 7", res.Value, err)
	}
	if res, err := s.Do(gctx, []byte("k9"), store.Op{Kind: store.IncrBy, Delta: 1}); err != nil || res.Int != 10 {
		t.Fatalf("INCR in the group = %+v, %v; want 10", res, err)
	}
	if _, err := s.Do(gctx, []byte("before"), store.Op{Kind: store.Delete}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DoBatch(gctx, [][]byte{[]byte("k1"), []byte("k2")}, store.Op{Kind: store.Delete}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetMulti(gctx, []store.KV{{Key: []byte("m1"), Value: []byte("a")}}, 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Do(gctx, []byte("tagged"), store.Op{Kind: store.Set, Value: []byte("t"), Tags: [][]byte{[]byte("red")}}); err != nil {
		t.Fatal(err)
	}
	if tags, err := s.KeyTags(gctx, []byte("tagged")); err != nil || len(tags) != 1 || string(tags[0]) != "red" {
		t.Fatalf("KeyTags in the group = %q, %v; want its own SET's [red]", tags, err)
	}
	// Not visible outside the group, not committed yet.
	if res, err := s.Do(ctx, []byte("k7"), store.Op{Kind: store.Get}); err != nil || res.Found {
		t.Fatalf("GET outside the group before its end = %+v, %v; want nothing", res, err)
	}
	if res, err := s.Do(ctx, []byte("before"), store.Op{Kind: store.Get}); err != nil || !res.Found {
		t.Fatalf("a key the group deletes, read outside it before its end: %+v, %v; want it still there", res, err)
	}
	if got := s.Commits(); got != commits {
		t.Fatalf("%d commits before the group ended", got-commits)
	}
	if err := end(); err != nil {
		t.Fatal(err)
	}
	if got := s.Commits() - commits; got != 1 {
		t.Fatalf("the group took %d commits, want 1", got)
	}
	for key, want := range map[string]string{"k0": "0", "k7": "7", "k9": "10", "m1": "a", "k1": "", "before": ""} {
		res, err := s.Do(ctx, []byte(key), store.Op{Kind: store.Get})
		if err != nil || string(res.Value) != want || res.Found != (want != "") {
			t.Errorf("after the group, %s = %q (found %v), %v; want %q", key, res.Value, res.Found, err, want)
		}
	}
	if n, err := s.Len(ctx); err != nil || n != 100 {
		t.Errorf("Len = %d, %v; want 100", n, err)
	}
	if s.GroupsSplit() != 0 {
		t.Errorf("GroupsSplit = %d", s.GroupsSplit())
	}
	if err := end(); err != nil { // nothing more to commit
		t.Fatal(err)
	}
}

// TestGroupReadingTheFileCommitsFirst: an operation that reads the file itself (DBSIZE, SCAN)
// inside a group commits the group so far, so that it sees its writes; the group goes on.
func TestGroupReadingTheFileCommitsFirst(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "vela.db"))
	ctx := context.Background()
	for i := range 5 {
		mustDo(t, s, fmt.Sprint("before", i), store.Op{Kind: store.Set, Value: []byte("v")})
	}
	gctx, end := s.Group(ctx)
	for i := range 5 {
		if _, err := s.Do(gctx, []byte(fmt.Sprint("g", i)), store.Op{Kind: store.Set, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Len(gctx); err != nil || n != 10 {
		t.Fatalf("Len in the group = %d, %v; want 10", n, err)
	}
	keys, _, err := s.Scan(gctx, 0, []byte("g*"), 100)
	if err != nil || len(keys) != 5 {
		t.Fatalf("SCAN in the group = %q, %v", keys, err)
	}
	if _, err := s.Do(gctx, []byte("g9"), store.Op{Kind: store.Set, Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if err := end(); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Len(ctx); n != 11 {
		t.Fatalf("Len after the group = %d, want 11", n)
	}
	if s.GroupsSplit() != 1 {
		t.Fatalf("GroupsSplit = %d, want 1 (the DBSIZE)", s.GroupsSplit())
	}
}

// TestGroupSurvivesAWriteOutsideIt: a write outside the group's context from the group's own
// goroutine would wait for a commit the committer holds back for the group: it is answered after
// groupWait instead of never, and the group is split.
func TestGroupSurvivesAWriteOutsideIt(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "vela.db"))
	ctx := context.Background()
	gctx, end := s.Group(ctx)
	if _, err := s.Do(gctx, []byte("a"), store.Op{Kind: store.Set, Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	mustDo(t, s, "b", store.Op{Kind: store.Set, Value: []byte("2")}) // outside the group
	if _, err := s.Do(gctx, []byte("c"), store.Op{Kind: store.Set, Value: []byte("3")}); err != nil {
		t.Fatal(err)
	}
	if err := end(); err != nil {
		t.Fatal(err)
	}
	if s.GroupsSplit() != 1 {
		t.Fatalf("GroupsSplit = %d, want 1", s.GroupsSplit())
	}
	if n, _ := s.Len(ctx); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
}

// TestCloseDropsAnOpenGroup: a store closed while a group is open (a shutdown that stopped
// waiting for its EXEC) keeps none of the group, and still commits another caller's write
// that waited behind it.
func TestCloseDropsAnOpenGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vela.db")
	s := open(t, path)
	ctx := context.Background()
	gctx, end := s.Group(ctx)
	for _, k := range []string{"g1", "g2"} {
		if _, err := s.Do(gctx, []byte(k), store.Op{Kind: store.Set, Value: []byte("in group")}); err != nil {
			t.Fatal(err)
		}
	}
	outside := make(chan error, 1)
	go func() {
		_, err := s.Do(ctx, []byte("other"), store.Op{Kind: store.Set, Value: []byte("outside")})
		outside <- err
	}()
	// The committer holds the other write in the group's transaction until the group goes on.
	time.Sleep(100 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-outside; err != nil {
		t.Fatalf("a write outside the group, queued before Close: %v", err)
	}
	if err := end(); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("ending the group after Close = %v, want store.ErrClosed", err)
	}

	s = open(t, path)
	for key, want := range map[string]string{"g1": "", "g2": "", "other": "outside"} {
		res := mustDo(t, s, key, store.Op{Kind: store.Get})
		if string(res.Value) != want || res.Found != (want != "") {
			t.Errorf("after reopening, %s = %q (found %v); want %q", key, res.Value, res.Found, want)
		}
	}
}
