package disk_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/testproc"
	"github.com/vela-cache/vela/store/disk"
)

// kstate is what a key holds after a write: its value, absolute expiry (0 none) and tag.
type kstate struct {
	deleted bool
	value   string
	pxat    int64
	tag     string
}

// crashClient is one writer's record: the acknowledged state of each of its keys, and the one
// write that was in flight when the server died (its outcome is unknown, either state is right).
type crashClient struct {
	acked    map[string]kstate
	inflight string
	pending  kstate
}

// TestCrashKeepsAcknowledgedWrites runs the vela binary on the disk store, has several clients
// write (with TTLs, tags, overwrites and deletes), kills it with SIGKILL in mid-stream, restarts
// it on the same file and checks that every acknowledged write is there with its value, expiry
// and tags.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	bin := testproc.Build(t)
	path := filepath.Join(t.TempDir(), "vela.db")
	p := testproc.Start(t, bin, "-store.type", "disk", "-store.disk.path", path)

	const writers = 8
	base := time.Now().Add(2 * time.Hour).UnixMilli()
	clients := make([]*crashClient, writers)
	var acked atomic.Int64
	var wg sync.WaitGroup
	for c := range writers {
		cc := &crashClient{acked: map[string]kstate{}}
		clients[c] = cc
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := redis.NewClient(&redis.Options{Addr: p.Addr, MaxRetries: -1, PoolSize: 1,
				DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
			defer rc.Close()
			ctx := context.Background()
			for i := 0; ; i++ {
				key := fmt.Sprintf("c%d:k%d", c, i%300)
				var next kstate
				var err error
				switch i % 10 {
				case 7: // plain write: no expiry, no tags
					next = kstate{value: fmt.Sprintf("v%d-%d", c, i)}
					err = setCmd(ctx, rc, key, next).Err()
				case 8:
					next = kstate{deleted: true}
					err = rc.Del(ctx, key).Err()
				default:
					next = kstate{value: fmt.Sprintf("v%d-%d", c, i), pxat: base + int64(i), tag: fmt.Sprintf("tag%d", i%5)}
					err = setCmd(ctx, rc, key, next).Err()
				}
				if err != nil { // the server is gone: this write may or may not have landed
					cc.inflight, cc.pending = key, next
					return
				}
				cc.acked[key] = next
				acked.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for acked.Load() < 3000 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.Kill()
	wg.Wait()
	if acked.Load() < 500 {
		t.Fatalf("only %d writes acknowledged before the kill", acked.Load())
	}
	t.Logf("killed after %d acknowledged writes", acked.Load())

	// Restart on the same file and read everything back over RESP.
	p2 := testproc.Start(t, bin, "-store.type", "disk", "-store.disk.path", path)
	rc := redis.NewClient(&redis.Options{Addr: p2.Addr, MaxRetries: -1})
	ctx := context.Background()
	checked := 0
	for c, cc := range clients {
		for key, want := range cc.acked {
			got := readState(t, ctx, rc, key)
			want.tag, got.tag = "", "" // tags are checked below
			if got == want {
				checked++
				continue
			}
			if key == cc.inflight {
				if p := cc.pending; got == (kstate{deleted: p.deleted, value: p.value, pxat: p.pxat}) {
					continue
				}
			}
			t.Errorf("client %d key %s: after restart %+v, acknowledged %+v", c, key, got, want)
		}
	}
	_ = rc.Close()
	if code, err := p2.Stop(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("SIGTERM: exit %d, %v\n%s", code, err, p2.Output())
	}

	// Tags: open the file directly and invalidate each tag; the keys under it must be exactly the
	// acknowledged ones (give or take the in-flight write).
	s, err := disk.Open(disk.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for tg := range 5 {
		tag := fmt.Sprintf("tag%d", tg)
		keys, err := s.InvalidateTags(ctx, [][]byte{[]byte(tag)})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, k := range keys {
			got[string(k)] = true
		}
		for _, cc := range clients {
			for key, st := range cc.acked {
				if key == cc.inflight {
					continue
				}
				if want := !st.deleted && st.tag == tag; want != got[key] {
					t.Errorf("tag %s: key %s present %v, want %v", tag, key, got[key], want)
				}
				delete(got, key)
			}
		}
		for k := range got {
			if !isInflight(clients, k) {
				t.Errorf("tag %s: unexpected key %s", tag, k)
			}
		}
	}
	t.Logf("checked %d keys", checked)
}

func isInflight(clients []*crashClient, key string) bool {
	for _, cc := range clients {
		if cc.inflight == key {
			return true
		}
	}
	return false
}

func setCmd(ctx context.Context, rc *redis.Client, key string, st kstate) *redis.Cmd {
	args := []any{"set", key, st.value}
	if st.pxat != 0 {
		args = append(args, "pxat", st.pxat)
	}
	if st.tag != "" {
		args = append(args, "tags", st.tag)
	}
	return rc.Do(ctx, args...)
}

func readState(t *testing.T, ctx context.Context, rc *redis.Client, key string) kstate {
	t.Helper()
	v, err := rc.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return kstate{deleted: true}
	}
	if err != nil {
		t.Fatal(err)
	}
	at, err := rc.PExpireTime(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	st := kstate{value: v}
	if at > 0 {
		st.pxat = int64(at / time.Millisecond)
	}
	return st
}
