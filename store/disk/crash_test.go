package disk_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
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

// crashClient is one writer's record: the acknowledged state of each of its keys, and the
// writes that were in flight when the server died (their outcome is unknown: either state is
// right). A writer that pipelines has many in flight.
type crashClient struct {
	acked    map[string]kstate
	inflight map[string][]kstate // every state an unanswered write may have left
}

// TestCrashKeepsAcknowledgedWrites runs the vela binary on the disk store, has several clients
// write (with TTLs, tags, overwrites and deletes; two of them pipeline batches of SETs and a DEL
// of several keys, which share commits), kills it with SIGKILL in mid-stream, restarts it on the
// same file and checks that every acknowledged write is there with its value, expiry and tags.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	bin := testproc.Build(t)
	path := filepath.Join(t.TempDir(), "vela.db")
	p := testproc.Start(t, bin, "-store.type", "disk", "-store.disk.path", path)

	const writers, pipeliners = 8, 2
	base := time.Now().Add(2 * time.Hour).UnixMilli()
	clients := make([]*crashClient, writers+pipeliners)
	var acked, piped atomic.Int64 // writes acknowledged to the plain writers, to the pipeliners
	var wg sync.WaitGroup
	for c := range writers + pipeliners {
		cc := &crashClient{acked: map[string]kstate{}, inflight: map[string][]kstate{}}
		clients[c] = cc
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := redis.NewClient(&redis.Options{Addr: p.Addr, MaxRetries: -1, PoolSize: 1,
				DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
			defer rc.Close()
			ctx := context.Background()
			if c >= writers {
				pipelineWrites(ctx, rc, c, base, cc, &piped)
				return
			}
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
					cc.inflight[key] = append(cc.inflight[key], next)
					return
				}
				cc.acked[key] = next
				acked.Add(1)
			}
		}()
	}
	killOnceAcked(p, &acked, 3000, &wg)
	if acked.Load() < 500 {
		t.Fatalf("only %d writes acknowledged before the kill", acked.Load())
	}
	if piped.Load() < 500 {
		t.Fatalf("only %d pipelined writes acknowledged before the kill", piped.Load())
	}
	t.Logf("killed after %d acknowledged writes, and %d pipelined", acked.Load(), piped.Load())

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
			if slices.ContainsFunc(cc.inflight[key], func(p kstate) bool {
				return got == kstate{deleted: p.deleted, value: p.value, pxat: p.pxat}
			}) {
				continue
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
				if _, ok := cc.inflight[key]; ok {
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

// killOnceAcked kills p with SIGKILL once acked reaches n (or after 20 s), then waits for the
// writers (wg), which stop at their first failed request.
func killOnceAcked(p *testproc.Proc, acked *atomic.Int64, n int64, wg *sync.WaitGroup) {
	deadline := time.Now().Add(20 * time.Second)
	for acked.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.Kill()
	wg.Wait()
}

func isInflight(clients []*crashClient, key string) bool {
	for _, cc := range clients {
		if _, ok := cc.inflight[key]; ok {
			return true
		}
	}
	return false
}

// pipelineWrites is a crash test writer that pipelines: batches of 16 SETs (with an expiry but no
// tags, which the disk store starts without waiting for their commits) and a DEL of four keys,
// each batch in one write. Replies come in order, each after its write's commit, so every
// command answered before the server died is acknowledged and the rest are in flight.
func pipelineWrites(ctx context.Context, rc *redis.Client, c int, base int64, cc *crashClient, acked *atomic.Int64) {
	for i := 0; ; i += 16 {
		type step struct {
			keys []string
			next kstate
			cmd  redis.Cmder
		}
		var steps []step
		_, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j := range 16 {
				key := fmt.Sprintf("p%d:k%d", c, (i+j)%300)
				next := kstate{value: fmt.Sprintf("v%d-%d", c, i+j), pxat: base + int64(i+j)}
				steps = append(steps, step{[]string{key}, next, setCmdOn(ctx, p, key, next)})
			}
			var dels []string
			for j := range 4 {
				dels = append(dels, fmt.Sprintf("p%d:k%d", c, (i*7+j*53)%300))
			}
			steps = append(steps, step{dels, kstate{deleted: true}, p.Del(ctx, dels...)})
			return nil
		})
		for _, st := range steps {
			for _, key := range st.keys {
				if st.cmd.Err() != nil {
					cc.inflight[key] = append(cc.inflight[key], st.next)
				} else {
					cc.acked[key] = st.next
					acked.Add(1)
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func setCmd(ctx context.Context, rc *redis.Client, key string, st kstate) *redis.Cmd {
	return setCmdOn(ctx, rc, key, st)
}

func setCmdOn(ctx context.Context, rc interface {
	Do(context.Context, ...any) *redis.Cmd
}, key string, st kstate) *redis.Cmd {
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
