package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/vela-cache/vela/internal/testnode"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestGoRedisBothProtocols(t *testing.T) {
	srv := testnode.StartDefault(t)
	for _, proto := range []int{2, 3} {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: proto})
		ctx := context.Background()
		if err := c.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
			t.Fatalf("proto %d: SET: %v", proto, err)
		}
		if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
			t.Fatalf("proto %d: GET = %q, %v", proto, v, err)
		}
		if _, err := c.Get(ctx, "missing").Result(); err != redis.Nil {
			t.Fatalf("proto %d: GET missing: %v", proto, err)
		}
		if f, err := c.IncrByFloat(ctx, "f", 1.5).Result(); err != nil || f != 1.5 {
			t.Fatalf("proto %d: INCRBYFLOAT = %v, %v", proto, f, err)
		}
		info, err := c.Info(ctx, "keyspace").Result()
		if err != nil || info == "" {
			t.Fatalf("proto %d: INFO = %q, %v", proto, info, err)
		}
		if err := c.Del(ctx, "f").Err(); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
}
