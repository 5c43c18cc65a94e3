package fetchlock_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node runs a test node; edit, when set, adjusts its configuration.
func node(t testing.TB, edit func(*config.Config)) *server.Server {
	t.Helper()
	cfg := testnode.Config()
	if edit != nil {
		edit(&cfg)
	}
	return testnode.Start(t, cfg)
}

// client returns a go-redis client with room for pool connections and a read timeout longer
// than any wait in these tests.
func client(t testing.TB, srv *server.Server, pool int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: pool, ReadTimeout: 30 * time.Second,
		PoolTimeout: 30 * time.Second, DialTimeout: 10 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// reply is one FETCHLOCK answer.
type reply struct {
	status, value, token string
	null                 bool // the second element was a RESP null
	err                  error
	elapsed              time.Duration
}

// doLock sends FETCHLOCK key opts… and decodes the reply.
func doLock(ctx context.Context, c redis.UniversalClient, key string, opts ...any) reply {
	start := time.Now()
	v, err := c.Do(ctx, append([]any{"FETCHLOCK", key}, opts...)...).Slice()
	r := reply{err: err, elapsed: time.Since(start)}
	if err != nil {
		return r
	}
	if len(v) < 2 {
		r.err = fmt.Errorf("short reply %v", v)
		return r
	}
	r.status, _ = v[0].(string)
	switch v[1].(type) {
	case nil:
		r.null = true
	case string:
		if r.status == "LOCKED" {
			r.token = v[1].(string)
		} else {
			r.value = v[1].(string)
		}
	}
	if len(v) == 3 {
		r.token, _ = v[2].(string)
	}
	return r
}

func (r reply) String() string {
	return fmt.Sprintf("[%s value=%q token=%q null=%v err=%v]", r.status, r.value, r.token, r.null, r.err)
}

// mustLock takes the lease on a missing key or fails the test.
func mustLock(t testing.TB, c redis.UniversalClient, key string, opts ...any) string {
	t.Helper()
	r := doLock(context.Background(), c, key, opts...)
	if r.err != nil || r.status != "LOCKED" || len(r.token) != 32 {
		t.Fatalf("FETCHLOCK %s %v = %v, want LOCKED with a token", key, opts, r)
	}
	return r.token
}

// fill sends FETCHFILL key token value extra… and returns its error ("" for OK).
func fill(c redis.UniversalClient, key, token, value string, extra ...any) string {
	err := c.Do(context.Background(), append([]any{"FETCHFILL", key, token, value}, extra...)...).Err()
	if err != nil {
		return err.Error()
	}
	return ""
}

// eventually polls cond until it holds or 30 seconds pass; then it fails the test. Only for
// the test's own goroutine: others use within.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !within(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// within polls cond until it holds (true) or 30 seconds pass (false).
func within(cond func() bool) bool {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// collect receives n replies, failing the test if they do not all come within a minute.
func collect(t testing.TB, results <-chan reply, n int) []reply {
	t.Helper()
	timeout := time.After(time.Minute)
	var out []reply
	for len(out) < n {
		select {
		case r := <-results:
			out = append(out, r)
		case <-timeout:
			t.Fatalf("only %d of %d replies arrived", len(out), n)
		}
	}
	return out
}

// waiters reports how many callers wait on srv.
func waiters(srv *server.Server) int { return srv.Leases().Counts().Waiters }

// tally counts replies by status, failing on errors.
func tally(t testing.TB, replies []reply) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, r := range replies {
		if r.err != nil {
			t.Fatalf("FETCHLOCK failed: %v", r.err)
		}
		n[r.status]++
	}
	return n
}

func isStale(msg string) bool { return strings.HasPrefix(msg, "STALE ") }

// watchStalls measures, until the returned function is called, how much longer than asked a
// 1 ms sleep took at worst: time in which this process's goroutines could not run (a loaded
// machine, a GC pause). The returned function stops the measurement and reports it.
func watchStalls() func() time.Duration {
	stop := make(chan struct{})
	done := make(chan time.Duration)
	go func() {
		var worst time.Duration
		for {
			select {
			case <-stop:
				done <- worst
				return
			default:
			}
			start := time.Now()
			time.Sleep(time.Millisecond)
			worst = max(worst, time.Since(start)-time.Millisecond)
		}
	}()
	return func() time.Duration {
		close(stop)
		return <-done
	}
}
