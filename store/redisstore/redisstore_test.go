package redisstore_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/store/redisstore"
	"github.com/vela-cache/vela/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t testing.TB, url string) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(redisstore.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		r := redistest.Start(t)
		return open(t, "redis://"+r.Addr+"/0")
	})
}

// TestGetsArePipelined checks that GET and SET without tags take the pipelined path (Start), which
// the shared conformance test lets a store decline.
func TestGetsArePipelined(t *testing.T) {
	r := redistest.Start(t)
	s := open(t, "redis://"+r.Addr+"/0")
	ctx := context.Background()
	set := s.Start(ctx, []byte("k"), store.Op{Kind: store.Set, Value: []byte("v")})
	get := s.Start(ctx, []byte("k"), store.Op{Kind: store.Get})
	if set == nil || get == nil {
		t.Fatalf("Start declined: SET %v, GET %v", set != nil, get != nil)
	}
	if res, err := get.Wait(); err != nil || string(res.Value) != "v" {
		t.Fatalf("pipelined GET after SET = %q, %v", res.Value, err)
	}
}

func TestExpires(t *testing.T) {
	r := redistest.Start(t)
	s := open(t, "redis://"+r.Addr+"/2")
	ctx := context.Background()
	far := time.Now().Add(time.Hour).UnixMilli()
	for i, k := range []string{"a", "b", "c"} {
		op := store.Op{Kind: store.Set, Value: []byte("v")}
		if i > 0 {
			op.TTL, op.ExpireAt = store.TTLSet, far
		}
		if _, err := s.Do(ctx, []byte(k), op); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Expires(ctx); err != nil || n != 2 {
		t.Fatalf("expires = %d %v, want 2", n, err)
	}
}
