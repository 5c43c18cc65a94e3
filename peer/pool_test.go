package peer

import (
	"bufio"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/resp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func args(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, a := range s {
		out[i] = []byte(a)
	}
	return out
}

// TestPipelinedAgainstRedis sends many concurrent requests over two connections to a real
// redis-server and checks every reply reaches its own caller, in RESP2 and RESP3.
func TestPipelinedAgainstRedis(t *testing.T) {
	srv := redistest.Start(t)
	for _, hello := range []string{"2", "3"} {
		p := NewPool(Config{Conns: 2, Handshake: [][][]byte{args("HELLO", hello)}})
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 300; i++ {
					k := "k:" + strconv.Itoa(g) + ":" + strconv.Itoa(i)
					set := p.Send(srv.Addr, args("SET", k, "v"+strconv.Itoa(i)), uint64(g), 5*time.Second)
					get := p.Send(srv.Addr, args("GET", k), uint64(g), 5*time.Second)
					if r, err := set.Result(); err != nil || r.Str != "OK" {
						t.Errorf("SET = %+v, %v", r, err)
						return
					}
					if r, err := get.Result(); err != nil || string(r.Bytes) != "v"+strconv.Itoa(i) {
						t.Errorf("GET %s = %+v, %v", k, r, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		cases := []struct {
			name string
			cmd  [][]byte
			kind resp.Kind
		}{
			{"nil", args("GET", "nope"), resp.KindNil},
			{"error", args("INCR", "k:0:1"), resp.KindError},
			{"int", args("DEL", "k:0:1", "k:0:2"), resp.KindInt},
			{"array", args("MGET", "k:0:3", "nope"), resp.KindArray},
		}
		for _, c := range cases {
			r, err := p.Do(srv.Addr, c.cmd, 0, 5*time.Second)
			if err != nil || r.Kind != c.kind {
				t.Fatalf("HELLO %s, %s: %+v, %v", hello, c.name, r, err)
			}
		}
		if r, _ := p.Do(srv.Addr, args("CONFIG", "GET", "maxclients"), 0, 5*time.Second); hello == "3" && r.Kind != resp.KindMap {
			t.Fatalf("RESP3 CONFIG GET = %+v, want a map", r)
		}
		p.Close()
	}
}

// TestSilentPeerTimesOut: a peer that accepts but never answers costs a caller its timeout,
// not a hang, and the requests behind it fail too.
func TestSilentPeerTimesOut(t *testing.T) {
	addr := silentPeer(t)
	p := NewPool(Config{Conns: 1})
	defer p.Close()
	start := time.Now()
	a := p.Send(addr, args("GET", "a"), 0, 200*time.Millisecond)
	b := p.Send(addr, args("GET", "b"), 0, 5*time.Second)
	if _, err := a.Result(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("silent peer: %v", err)
	}
	if _, err := b.Result(); err == nil {
		t.Fatal("request queued behind a timed-out one succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("failing took %v", d)
	}
	if r := a.Wait(); !r.IsError() || r.Str[:12] != "ERR cluster:" {
		t.Fatalf("Wait = %+v", r)
	}
}

// silentPeer listens on a free port, accepts connections and never answers; it ends with the
// test.
func silentPeer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// A call that asked to be notified times out at its own deadline even when a call with a longer
// one is ahead of it on the connection, whether the reader started before it or for it.
func TestNotifiedCallKeepsItsDeadline(t *testing.T) {
	for _, readerFirst := range []bool{false, true} {
		addr := silentPeer(t)
		p := NewPool(Config{Conns: 1})
		long := p.Send(addr, args("GET", "long"), 0, 4*time.Second)
		long.Flush()
		var notified []chan struct{}
		notify := func(c *Call) {
			ch := make(chan struct{})
			notified = append(notified, ch)
			if !c.Notify(func() { close(ch) }) {
				close(ch)
			}
		}
		if readerFirst {
			notify(long) // the reader starts, and blocks with the long call's deadline
			time.Sleep(2 * idleCheckAfter)
		}
		start := time.Now()
		short := p.Send(addr, args("GET", "short"), 0, 200*time.Millisecond)
		short.Flush()
		notify(short)
		if !readerFirst {
			notify(long)
		}
		select {
		case <-notified[len(notified)-1]:
		case <-notified[0]:
		case <-time.After(3 * time.Second):
		}
		if _, err := short.Result(); !errors.Is(err, ErrTimeout) {
			t.Fatalf("reader first %v: short call: %v", readerFirst, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("reader first %v: the 200 ms call failed after %v", readerFirst, d)
		}
		p.Close()
	}
}

func TestUnreachablePeerFailsFast(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	p := NewPool(Config{})
	defer p.Close()
	for i := 0; i < 3; i++ {
		start := time.Now()
		if _, err := p.Do(addr, args("PING"), 0, time.Second); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("closed port: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("took %v", d)
		}
	}
}

// Calls whose callers ask to be notified instead of waiting (an event loop's forwards) are read
// by a reader goroutine of the pool's, in order, mixed with callers that wait in Result; a
// silent peer notifies with a timeout error; nothing is left running after Close (TestMain).
func TestNotify(t *testing.T) {
	srv := redistest.Start(t)
	p := NewPool(Config{Conns: 1})
	const n = 2000
	notified := make(chan int, n)
	calls := make([]*Call, n)
	for i := range n {
		k := "n:" + strconv.Itoa((i/2)%50) // a GET reads the SET just before it
		if i%2 == 0 {
			calls[i] = p.Send(srv.Addr, args("SET", k, strconv.Itoa(i)), 0, 5*time.Second)
		} else {
			calls[i] = p.Send(srv.Addr, args("GET", k), 0, 5*time.Second)
		}
		switch {
		case i%7 == 3: // this caller waits in Result, on its own goroutine
			go func() {
				_, _ = calls[i].Result()
				notified <- i
			}()
		case !calls[i].Notify(func() { notified <- i }):
			notified <- i // finished already
		}
		if i%100 == 99 {
			calls[i].Flush()
		}
	}
	calls[n-1].Flush()
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case <-notified:
		case <-deadline:
			t.Fatal("not every call finished")
		}
	}
	for i, c := range calls {
		r, err := c.Result()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if i%2 == 1 && string(r.Bytes) != strconv.Itoa(i-1) { // the SET just before it, same key
			t.Fatalf("GET %d = %q, want %d", i, r.Bytes, i-1)
		}
	}
	p.Close()

	// A peer that never answers: the notification still comes, with the timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	q := NewPool(Config{Conns: 1})
	defer q.Close()
	call := q.Send(ln.Addr().String(), args("GET", "a"), 0, 200*time.Millisecond)
	done := make(chan struct{})
	if !call.Notify(func() { close(done) }) {
		t.Fatal("a call to a silent peer finished at once")
	}
	call.Flush()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification from a silent peer")
	}
	if _, err := call.Result(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("silent peer: %v", err)
	}
	if c, ok := <-accepted; ok {
		c.Close()
	}
}

// TestReadingRolePassesToAWaitingCaller: the caller reading a connection's replies passes the
// role on when its own reply has come. The oldest pending call may have nobody waiting for it
// (a forward whose client connection settles later); a caller waiting behind it must still get
// the role and its reply, not sleep until something else reads.
func TestReadingRolePassesToAWaitingCaller(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	answer := make(chan struct{})
	served := make(chan struct{})
	go func() { // a peer that reads three requests and answers them when told
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 0; i < 3*5; i++ { // three requests of five lines: *2, $3, GET, $1, key
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
		}
		<-answer
		_, _ = c.Write([]byte("+x\r\n+a\r\n+b\r\n"))
		_, _ = c.Read(make([]byte, 1)) // until the pool closes
	}()
	p := NewPool(Config{Conns: 1})
	defer func() { p.Close(); <-served }()
	addr := ln.Addr().String()
	x := p.Send(addr, args("GET", "x"), 0, 5*time.Second)
	_ = p.Send(addr, args("GET", "a"), 0, 5*time.Second) // nobody waits for this one
	b := p.Send(addr, args("GET", "b"), 0, 5*time.Second)
	xDone, bDone := make(chan error, 1), make(chan error, 1)
	go func() { _, err := x.Result(); xDone <- err }()
	// x's caller reads; b's caller waits for the role.
	waitUntil(t, func() bool {
		cn := x.conn
		cn.mu.Lock()
		defer cn.mu.Unlock()
		return cn.reading
	})
	go func() { _, err := b.Result(); bDone <- err }()
	waitUntil(t, func() bool {
		cn := x.conn
		cn.mu.Lock()
		defer cn.mu.Unlock()
		return len(cn.waiters) == 1
	})
	close(answer)
	for name, ch := range map[string]chan error{"x": xDone, "b": bDone} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s's caller never got its reply", name)
		}
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLargeBatchThenPipelined sends a batch larger than the write buffers kept for reuse, then
// many concurrent requests over the same connection, whose queueing must never touch the bytes
// being written: every reply reaches its own caller with its own value.
func TestLargeBatchThenPipelined(t *testing.T) {
	srv := redistest.Start(t)
	p := NewPool(Config{Conns: 1})
	defer p.Close()
	big := string(make([]byte, 3<<20))
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					k := "k:" + strconv.Itoa(g) + ":" + strconv.Itoa(i)
					v := "v" + strconv.Itoa(round*1000+i)
					if g == 0 && i%50 == 0 {
						v = big + v // a write of more than 1 MiB now and then
					}
					set := p.Send(srv.Addr, args("SET", k, v), uint64(g), 10*time.Second)
					get := p.Send(srv.Addr, args("GET", k), uint64(g), 10*time.Second)
					if r, err := set.Result(); err != nil || r.Str != "OK" {
						t.Errorf("SET %s = %+v, %v", k, r.Str, err)
						return
					}
					if r, err := get.Result(); err != nil || string(r.Bytes) != v {
						t.Errorf("GET %s: %d bytes, %v; want %d bytes", k, len(r.Bytes), err, len(v))
						return
					}
				}
			}()
		}
		wg.Wait()
	}
}

// TestRestartedPeerIdleConnection: a peer that restarted while its connections sat idle closed
// them; the first request after the restart must not fail on the dead connection (the pool
// notices before writing and dials again), on the pipelined connections and the exclusive ones.
// An exclusive connection held across the restart fails with ErrNotSent.
func TestRestartedPeerIdleConnection(t *testing.T) {
	srv := redistest.Start(t)
	p := NewPool(Config{})
	defer p.Close()
	ctx := t.Context()
	if _, err := p.Do(srv.Addr, args("SET", "k", "v"), 0, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DoExclusive(ctx, srv.Addr, args("PING"), time.Second); err != nil {
		t.Fatal(err)
	}
	held, err := p.Exclusive(srv.Addr) // kept across the restart, as a transaction keeps its WATCH's
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	srv.Restart(t)
	if err := redistest.WaitReady(srv.Addr, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * idleCheckAfter) // the connection has been idle long enough to be checked
	if r, err := p.Do(srv.Addr, args("GET", "k"), 0, time.Second); err != nil || r.Kind != resp.KindNil {
		t.Fatalf("first GET after the restart = %+v, %v; want nil (a fresh server)", r, err)
	}
	if r, err := p.DoExclusive(ctx, srv.Addr, args("PING"), time.Second); err != nil || r.Str != "PONG" {
		t.Fatalf("first exclusive PING after the restart = %+v, %v", r, err)
	}
	// A connection held across the restart cannot be replaced (the server's state on it is
	// gone), but the request is known not to have been sent.
	if _, err := held.Do(ctx, [][][]byte{args("MULTI"), args("EXEC")}, time.Second); !errors.Is(err, ErrNotSent) {
		t.Fatalf("request on a connection held across the restart: %v, want ErrNotSent", err)
	}
	held.Release(false)
}
