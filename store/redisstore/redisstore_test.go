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
