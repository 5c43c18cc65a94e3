package storetest_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/testnode"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDifferentialStores sends the same seeded stream of string and key commands, in pipelines
// of random length, to a real Redis and to Vela on each store, and compares every reply. Expiry
// times are absolute (PXAT, PEXPIREAT, PEXPIRETIME) so the replies do not depend on timing.
func TestDifferentialStores(t *testing.T) {
	for _, storeType := range []string{"memory", "disk", "redis"} {
		t.Run(storeType, func(t *testing.T) {
			ref := redistest.Start(t)
			cfg := testnode.Config()
			cfg.Store.Type = storeType
			switch storeType {
			case "disk":
				cfg.Store.DiskPath = filepath.Join(t.TempDir(), "vela.db")
			case "redis":
				backing := redistest.Start(t)
				cfg.Store.RedisURL = "redis://" + backing.Addr + "/0"
			}
			srv := testnode.Start(t, cfg)
			want := redis.NewClient(&redis.Options{Addr: ref.Addr, Protocol: 2})
			got := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 2})
			defer want.Close()
			defer got.Close()
			far := time.Now().Add(time.Hour).UnixMilli()
			sent := 0
			for batch := 0; batch < 600; batch++ {
				if batch%150 == 0 { // a few seeds, each from an empty keyspace
					want.FlushAll(context.Background())
					got.FlushAll(context.Background())
				}
				rng := rand.New(rand.NewPCG(uint64(batch/150), uint64(batch)))
				cmds := make([][]any, 1+rng.IntN(20))
				for i := range cmds {
					cmds[i] = randomCommand(rng, far)
				}
				a, b := pipeline(t, want, cmds), pipeline(t, got, cmds)
				for i := range cmds {
					if !reflect.DeepEqual(a[i], b[i]) {
						t.Fatalf("batch %d command %d %q:\n redis: %#v\n vela:  %#v", batch, i, cmds[i], a[i], b[i])
					}
				}
				sent += len(cmds)
			}
			t.Logf("%d commands, identical replies", sent)
		})
	}
}

// reply is a command's outcome: its value or its error text.
type reply struct {
	Val any
	Err string
}

func pipeline(t *testing.T, c *redis.Client, cmds [][]any) []reply {
	t.Helper()
	ctx := context.Background()
	p := c.Pipeline()
	out := make([]*redis.Cmd, len(cmds))
	for i, cmd := range cmds {
		out[i] = p.Do(ctx, cmd...)
	}
	_, _ = p.Exec(ctx)
	res := make([]reply, len(cmds))
	for i, c := range out {
		v, err := c.Result()
		res[i].Val = v
		if err != nil {
			res[i].Err = err.Error()
		}
	}
	return res
}

var (
	diffKeys   = []string{"a", "b", "c", "n", "f", "{x}1", "{x}2", "long"}
	diffValues = []string{"", "v", "hello", "10", "-3", "3.5", "1e3", "abc", "9223372036854775807", "-9223372036854775808", " 7"}
)

func randomCommand(rng *rand.Rand, far int64) []any {
	k := func() string { return diffKeys[rng.IntN(len(diffKeys))] }
	v := func() string { return diffValues[rng.IntN(len(diffValues))] }
	at := func() int64 { return far + int64(rng.IntN(3))*1000 }
	switch rng.IntN(24) {
	case 0, 1, 2:
		cmd := []any{"set", k(), v()}
		switch rng.IntN(3) {
		case 1:
			cmd = append(cmd, "nx")
		case 2:
			cmd = append(cmd, "xx")
		}
		if rng.IntN(3) == 0 {
			cmd = append(cmd, "get")
		}
		switch rng.IntN(4) {
		case 1:
			cmd = append(cmd, "pxat", at())
		case 2:
			cmd = append(cmd, "keepttl")
		}
		return cmd
	case 3, 4, 5:
		return []any{"get", k()}
	case 6:
		return []any{"del", k(), k()}
	case 7:
		return []any{"incr", k()}
	case 8:
		return []any{"incrby", k(), rng.IntN(200) - 100}
	case 9:
		return []any{"incrbyfloat", k(), []string{"1.5", "-0.25", "abc", "1e2"}[rng.IntN(4)]}
	case 10:
		return []any{"append", k(), v()}
	case 11:
		return []any{"strlen", k()}
	case 12:
		return []any{"exists", k(), k()}
	case 13:
		return []any{"getdel", k()}
	case 14:
		if rng.IntN(2) == 0 {
			return []any{"getex", k(), "persist"}
		}
		return []any{"getex", k(), "pxat", at()}
	case 15:
		cmd := []any{"pexpireat", k(), at()}
		if c := []string{"", "nx", "xx", "gt", "lt"}[rng.IntN(5)]; c != "" {
			cmd = append(cmd, c)
		}
		return cmd
	case 16:
		return []any{"persist", k()}
	case 17:
		return []any{"pexpiretime", k()}
	case 18:
		return []any{"mset", "{x}1", v(), "{x}2", v()}
	case 19:
		return []any{"mget", k(), k(), k()}
	case 20:
		return []any{"msetnx", "{x}1", v(), "{x}2", v()}
	case 21:
		return []any{"getset", k(), v()}
	case 22:
		return []any{"type", k()}
	default:
		return []any{"decrby", k(), rng.IntN(10)}
	}
}
