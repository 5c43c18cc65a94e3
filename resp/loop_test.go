package resp_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vela-cache/vela/resp"
)

// inlineHandler is a Handler and an Inliner: the commands named in waits are declined by
// TryServeRESP (they must run on a goroutine), every other command runs in-line.
type inlineHandler struct {
	fn    resp.HandlerFunc
	waits map[string]bool
}

func (h inlineHandler) ServeRESP(c *resp.Conn, args [][]byte) resp.Reply { return h.fn(c, args) }

func (h inlineHandler) TryServeRESP(c *resp.Conn, args [][]byte) (resp.Reply, bool) {
	if h.waits[strings.ToUpper(string(args[0]))] {
		return resp.Reply{}, false
	}
	return h.fn(c, args), true
}

// waitsOn builds a handler that may run on an event loop, except for the named commands.
func waitsOn(names ...string) func(resp.HandlerFunc) resp.Handler {
	return func(fn resp.HandlerFunc) resp.Handler {
		h := inlineHandler{fn: fn, waits: map[string]bool{}}
		for _, n := range names {
			h.waits[n] = true
		}
		return h
	}
}

// inBothModes runs test with every connection on its own goroutine, then on an event loop.
func inBothModes(t *testing.T, test func(t *testing.T, loops int)) {
	t.Run("goroutines", func(t *testing.T) { test(t, 0) })
	if resp.LoopsSupported {
		t.Run("eventloop", func(t *testing.T) { test(t, 1) })
	}
}

// loopServer serves PING, ECHO x, BIG n (a bulk of n bytes), QUIT, BOOM (panics) and NAP ms (waits
// on a goroutine) with one event loop.
func loopServer(t *testing.T, cfg resp.Config) *resp.Server {
	t.Helper()
	if !resp.LoopsSupported {
		t.Skip("event loops need Linux")
	}
	cfg.Addr, cfg.EventLoops = "127.0.0.1:0", 1
	return serveTest(t, resp.NewServer(cfg, waitsOn("NAP")(testCommands)))
}

// testCommands serves PING, ECHO x, BIG n, QUIT, BOOM and NAP ms (see loopServer).
func testCommands(c *resp.Conn, args [][]byte) resp.Reply {
	switch strings.ToUpper(string(args[0])) {
	case "BIG":
		n, _ := strconv.Atoi(string(args[1]))
		return resp.Bulk(bytes.Repeat([]byte{'v'}, n))
	case "QUIT":
		c.Quit()
		return resp.OK
	case "BOOM":
		panic("handler bug")
	case "ECHO":
		return resp.Bulk(args[1])
	case "NAP":
		d, _ := time.ParseDuration(string(args[1]) + "ms")
		c.Blocking(func() { time.Sleep(d) })
		return resp.Bulk(args[1])
	}
	return resp.Status("PONG")
}

// serveTest starts srv on its goroutine and shuts it down, within 5 s, when the test ends.
func serveTest(t *testing.T, srv *resp.Server) *resp.Server {
	t.Helper()
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}

// dialLoop connects and returns the connection with a reader, under a test-wide deadline.
func dialLoop(t *testing.T, srv *resp.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc, bufio.NewReader(nc)
}

// expectLines reads one line per want and compares it without its CRLF.
func expectLines(t *testing.T, br *bufio.Reader, want ...string) {
	t.Helper()
	for _, w := range want {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading %q: %v", w, err)
		}
		if got := strings.TrimRight(line, "\r\n"); got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
	}
}

// waitHeld waits until the event loop holds n connections.
func waitHeld(t *testing.T, srv *resp.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for srv.LoopHeld() != n {
		if time.Now().After(deadline) {
			t.Fatalf("event loop holds %d connections, want %d", srv.LoopHeld(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A command the loop declines moves its connection to a goroutine, with the replies of the
// commands before it written first and those after it in order; once the connection has sent
// enough commands the loop could run and is idle, the loop holds it again.
func TestLoopHandsOffAndTakesBack(t *testing.T) {
	srv := loopServer(t, resp.Config{})
	nc, br := dialLoop(t, srv)
	waitHeld(t, srv, 1)
	if _, err := nc.Write([]byte("PING\r\n*2\r\n$3\r\nNAP\r\n$2\r\n30\r\nPING\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	expectLines(t, br, "+PONG", "$2", "30", "+PONG", "+PONG")
	waitHeld(t, srv, 0) // a connection that sends commands the loop declines stays on its goroutine
	for range 16 {
		if _, err := nc.Write([]byte("PING\r\n")); err != nil {
			t.Fatal(err)
		}
		expectLines(t, br, "+PONG")
	}
	waitHeld(t, srv, 1)
	for range 3 {
		if _, err := nc.Write([]byte("PING\r\n")); err != nil {
			t.Fatal(err)
		}
		expectLines(t, br, "+PONG")
	}
}

// A reply larger than the socket buffer cannot be written by the loop without waiting: the
// connection's goroutine writes the rest while the client reads slowly, and nothing is lost.
func TestLoopLargeReply(t *testing.T) {
	srv := loopServer(t, resp.Config{})
	nc, br := dialLoop(t, srv)
	const size = 8 << 20
	if _, err := nc.Write([]byte("*2\r\n$3\r\nBIG\r\n$7\r\n" + strconv.Itoa(size) + "\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the socket buffer fills before the client reads
	expectLines(t, br, "$"+strconv.Itoa(size))
	n, err := io.CopyN(io.Discard, br, size+2)
	if err != nil || n != size+2 {
		t.Fatalf("read %d bytes of the reply: %v", n, err)
	}
	expectLines(t, br, "+PONG")
	waitHeld(t, srv, 1) // PING ran in-line: the loop has the connection back
}

// A protocol error met on the loop is answered with Redis's text, then the connection closes.
func TestLoopProtocolError(t *testing.T) {
	srv := loopServer(t, resp.Config{})
	nc, br := dialLoop(t, srv)
	if _, err := nc.Write([]byte("PING\r\n*1\r\n$x\r\n")); err != nil {
		t.Fatal(err)
	}
	expectLines(t, br, "+PONG", "-ERR Protocol error: invalid bulk length")
	if _, err := br.ReadString('\n'); err != io.EOF {
		t.Fatalf("connection still open after a protocol error: %v", err)
	}
	waitHeld(t, srv, 0)
}

// QUIT on the loop writes its reply and closes; commands pipelined after it do not run.
func TestLoopQuit(t *testing.T) {
	srv := loopServer(t, resp.Config{})
	nc, br := dialLoop(t, srv)
	if _, err := nc.Write([]byte("QUIT\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	expectLines(t, br, "+OK")
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after QUIT: %q, %v", rest, err)
	}
	waitHeld(t, srv, 0)
}

// A panic in an in-line handler costs its client the connection, nothing else.
func TestLoopHandlerPanic(t *testing.T) {
	srv := loopServer(t, resp.Config{})
	other, obr := dialLoop(t, srv)
	nc, br := dialLoop(t, srv)
	waitHeld(t, srv, 2)
	if _, err := nc.Write([]byte("BOOM\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := br.ReadString('\n'); err != io.EOF {
		t.Fatalf("connection of the panicking command still open: %v", err)
	}
	if _, err := other.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	expectLines(t, obr, "+PONG")
	if n := srv.ClientCount(); n != 1 {
		t.Fatalf("%d clients after the panic, want 1", n)
	}
}

// The loop enforces the idle timeout on the connections it holds.
func TestLoopIdleTimeout(t *testing.T) {
	srv := loopServer(t, resp.Config{IdleTimeout: 200 * time.Millisecond})
	nc, br := dialLoop(t, srv)
	for range 3 { // activity keeps the connection open
		time.Sleep(100 * time.Millisecond)
		if _, err := nc.Write([]byte("PING\r\n")); err != nil {
			t.Fatal(err)
		}
		expectLines(t, br, "+PONG")
	}
	start := time.Now()
	if _, err := br.ReadString('\n'); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond || waited > 3*time.Second {
		t.Fatalf("closed after %v idle, want about 200 ms", waited)
	}
}

// Shutdown closes the connections the loop holds and its goroutine ends (TestMain checks for
// leaks); a client that disconnects on its own is removed.
func TestLoopShutdownAndDisconnect(t *testing.T) {
	srv := loopServer(t, resp.Config{})
	var conns []net.Conn
	for range 20 {
		nc, br := dialLoop(t, srv)
		if _, err := nc.Write([]byte("PING\r\n")); err != nil {
			t.Fatal(err)
		}
		expectLines(t, br, "+PONG")
		conns = append(conns, nc)
	}
	waitHeld(t, srv, 20)
	for _, nc := range conns[:10] {
		_ = nc.Close()
	}
	waitHeld(t, srv, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := srv.ClientCount(); n != 0 {
		t.Fatalf("%d clients after Shutdown", n)
	}
	for _, nc := range conns[10:] {
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Fatal("connection open after Shutdown")
		}
	}
}

// Commands pipelined in batches larger than the read buffer all run, in order, on the loop.
func TestLoopLargePipeline(t *testing.T) {
	srv := loopServer(t, resp.Config{})
	nc, br := dialLoop(t, srv)
	const n = 20000
	go func() {
		_, _ = nc.Write(bytes.Repeat([]byte("*2\r\n$3\r\nBIG\r\n$2\r\n10\r\n"), n))
	}()
	for range n {
		expectLines(t, br, "$10", "vvvvvvvvvv")
	}
}

// timedLater is a Later reply computed by a timer: a Notifier, like a cluster forward.
type timedLater struct {
	mu    sync.Mutex
	done  chan struct{}
	fn    func()
	reply resp.Reply
}

func newTimedLater(d time.Duration, r resp.Reply) *timedLater {
	l := &timedLater{done: make(chan struct{}), reply: r}
	time.AfterFunc(d, func() {
		l.mu.Lock()
		close(l.done)
		fn := l.fn
		l.mu.Unlock()
		if fn != nil {
			fn()
		}
	})
	return l
}

func (l *timedLater) Notify(fn func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return false
	default:
		l.fn = fn
		return true
	}
}

func (l *timedLater) Reply() resp.Reply { <-l.done; return l.reply }

// blockingLater is a Later reply that cannot notify: it is waited for on a goroutine.
type blockingLater struct{ *timedLater }

func (l blockingLater) Reply() resp.Reply { return l.timedLater.Reply() }

// laterHandler serves SLOW ms v (a notifying Later), BLOCKY ms v (a Later that cannot notify),
// ORDERED (which must not overtake pending replies, so the loop declines it while there are
// some) and PING, all on the loop.
type laterHandler struct{}

func (laterHandler) ServeRESP(c *resp.Conn, args [][]byte) resp.Reply {
	switch strings.ToUpper(string(args[0])) {
	case "SLOW", "BLOCKY":
		d, _ := time.ParseDuration(string(args[1]) + "ms")
		l := newTimedLater(d, resp.BulkString(string(args[2])))
		if strings.EqualFold(string(args[0]), "BLOCKY") {
			return resp.Reply{Later: blockingLater{l}}
		}
		return resp.Reply{Later: l}
	case "ORDERED":
		c.Settle()
		return resp.Status("ORDERED")
	case "HUGE": // a Later reply of 64 KiB, counted in hugeRun
		hugeRun.Add(1)
		return resp.Reply{Later: newTimedLater(0, resp.Bulk(make([]byte, 64<<10)))}
	}
	return resp.Status("PONG")
}

// hugeRun counts the HUGE commands laterHandler has run.
var hugeRun atomic.Int64

func (h laterHandler) TryServeRESP(c *resp.Conn, args [][]byte) (resp.Reply, bool) {
	if strings.EqualFold(string(args[0]), "ORDERED") && c.Pending() {
		return resp.Reply{}, false
	}
	return h.ServeRESP(c, args), true
}

// Later replies on the loop: a connection waits for its pending replies without holding up the
// loop's other connections, its replies keep their order, a command that must not overtake them
// runs after them, and a Later that cannot notify is waited for on a goroutine.
func TestLoopLaterReplies(t *testing.T) {
	if !resp.LoopsSupported {
		t.Skip("event loops need Linux")
	}
	srv := serveTest(t, resp.NewServer(resp.Config{Addr: "127.0.0.1:0", EventLoops: 1}, laterHandler{}))
	slow, sbr := dialLoop(t, srv)
	fast, fbr := dialLoop(t, srv)
	waitHeld(t, srv, 2)
	cmd := func(args ...string) string {
		b := "*" + strconv.Itoa(len(args)) + "\r\n"
		for _, a := range args {
			b += "$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n"
		}
		return b
	}
	start := time.Now()
	// The first reply takes 1.5 s; the other connection's five round trips must not wait for it
	// (1 s is far above what they take, even under -race on a loaded machine).
	if _, err := slow.Write([]byte(cmd("SLOW", "1500", "a") + cmd("PING") + cmd("SLOW", "10", "b") +
		cmd("ORDERED") + cmd("SLOW", "0", "c") + cmd("PING"))); err != nil {
		t.Fatal(err)
	}
	// The other connection is served while the first waits.
	for range 5 {
		if _, err := fast.Write([]byte("PING\r\n")); err != nil {
			t.Fatal(err)
		}
		expectLines(t, fbr, "+PONG")
	}
	if waited := time.Since(start); waited > time.Second {
		t.Fatalf("another connection waited %v behind a pending reply", waited)
	}
	expectLines(t, sbr, "$1", "a", "+PONG", "$1", "b", "+ORDERED", "$1", "c", "+PONG")
	waitHeld(t, srv, 2) // both still on the loop
	// A Later that cannot notify moves its connection to a goroutine; the replies stay in order.
	if _, err := slow.Write([]byte(cmd("SLOW", "20", "x") + cmd("BLOCKY", "20", "y") + cmd("PING"))); err != nil {
		t.Fatal(err)
	}
	expectLines(t, sbr, "$1", "x", "$1", "y", "+PONG")
	// A client that goes away while its replies are pending is closed once they are done.
	if _, err := fast.Write([]byte(cmd("SLOW", "50", "z"))); err != nil {
		t.Fatal(err)
	}
	_ = fast.Close()
	deadline := time.Now().Add(5 * time.Second)
	for srv.ClientCount() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d clients, want 1 after the disconnect", srv.ClientCount())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Many connections pipelining at once: the loop serves several of them per poll round and writes
// their replies at its end. Each connection gets its own replies, all of them, in order, also
// when a command the loop declines (NAP) moves it to a goroutine after replies were queued for it
// in the same round.
func TestLoopRoundRepliesKeepTheirConnection(t *testing.T) {
	srv := loopServer(t, resp.Config{})
	// A burst is larger than the loop's first read buffer, so the loop queues the replies of its
	// first part before it reads the rest, where NAP is.
	const conns, bursts, perBurst = 24, 8, 300
	pad := strings.Repeat("x", 64)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for ci := range conns {
		nc, br := dialLoop(t, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range bursts {
				var req bytes.Buffer
				var want []string
				for i := range perBurst {
					tok := strconv.Itoa(ci) + "-" + strconv.Itoa(b) + "-" + strconv.Itoa(i) + pad
					req.WriteString("ECHO " + tok + "\r\n")
					want = append(want, "$"+strconv.Itoa(len(tok)), tok)
					if ci%3 == 0 && i == perBurst-10 { // hand off late in the burst
						req.WriteString("NAP 0\r\n")
						want = append(want, "$1", "0")
					}
				}
				if _, err := nc.Write(req.Bytes()); err != nil {
					errs <- err
					return
				}
				for _, w := range want {
					line, err := br.ReadString('\n')
					if err != nil {
						errs <- err
						return
					}
					if got := strings.TrimRight(line, "\r\n"); got != w {
						errs <- fmt.Errorf("connection %d: got %q, want %q", ci, got, w)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// keyRecorder is a Prefetcher that records the keys it is given.
type keyRecorder struct {
	mu    sync.Mutex
	keys  []string
	calls int
}

func (r *keyRecorder) Prefetch(keys [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	for _, k := range keys {
		r.keys = append(r.keys, string(k))
	}
}

// TestLoopPrefetchesPipelinedKeys: a pipelined batch is offered to the Prefetcher before it runs,
// in windows, each key once and in order, and the replies are those of the commands.
func TestLoopPrefetchesPipelinedKeys(t *testing.T) {
	rec := &keyRecorder{}
	srv := loopServer(t, resp.Config{Prefetcher: rec})
	nc, br := dialLoop(t, srv)
	const n = 40
	var req bytes.Buffer
	for i := range n {
		k := "k" + strconv.Itoa(i)
		fmt.Fprintf(&req, "*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n", len(k), k)
	}
	if _, err := nc.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		var lines [2]string
		for j := range lines {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			lines[j] = strings.TrimRight(line, "\r\n")
		}
		if k := "k" + strconv.Itoa(i); lines[1] != k {
			t.Fatalf("reply %d: %q, want %q", i, lines, k)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	next := 0 // the keys must be k0..k39 in order, some perhaps skipped when a read split the batch
	for _, k := range rec.keys {
		for next < n && "k"+strconv.Itoa(next) != k {
			next++
		}
		if next == n {
			t.Fatalf("prefetched keys out of order or repeated: %q", rec.keys)
		}
		next++
	}
	if len(rec.keys) < 16 || rec.calls < 2 {
		t.Fatalf("%d calls prefetched %q; want the batch in windows", rec.calls, rec.keys)
	}
}

// A client that sends its commands and shuts its side down at once (printf … | nc -N) gets
// every reply, then the end of the stream, and no longer counts as a client: also when the
// end arrives in the same event as the commands, and when a reply was still pending then.
func TestHalfClosedClientIsAnsweredAndDropped(t *testing.T) {
	inBothModes(t, func(t *testing.T, loops int) {
		srv := serveTest(t, resp.NewServer(resp.Config{Addr: "127.0.0.1:0", EventLoops: loops}, laterHandler{}))
		for _, input := range []string{"PING\r\nPING\r\n", "SLOW 30 a\r\nPING\r\n"} {
			nc, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := nc.Write([]byte(input)); err != nil {
				t.Fatal(err)
			}
			if err := nc.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(nc) // ends when the server closes
			_ = nc.Close()
			if err != nil {
				t.Fatalf("%q: reading the replies: %v", input, err)
			}
			want := "+PONG\r\n+PONG\r\n"
			if strings.HasPrefix(input, "SLOW") {
				want = "$1\r\na\r\n+PONG\r\n"
			}
			if string(got) != want {
				t.Fatalf("%q: got %q, want %q", input, got, want)
			}
		}
		waitNoClients(t, srv, "after their peers closed")
	})
}

// waitNoClients waits, at most 10 s, until srv serves no client.
func waitNoClients(t *testing.T, srv *resp.Server, why string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.ClientCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d clients left %s", srv.ClientCount(), why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dialNotReading connects a client with a small receive buffer that asks for 64 MiB of replies
// (BIG) and never reads them.
func dialNotReading(t *testing.T, srv *resp.Server) {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.(*net.TCPConn).SetReadBuffer(4096)
	for range 64 { // far more than the socket buffers hold
		if _, err := nc.Write([]byte("BIG 1048576\r\n")); err != nil {
			break
		}
	}
}

// A protocol error is answered after the replies of the commands before it, pending ones
// included, and then the connection closes.
func TestProtocolErrorAfterPendingReplies(t *testing.T) {
	inBothModes(t, func(t *testing.T, loops int) {
		srv := serveTest(t, resp.NewServer(resp.Config{Addr: "127.0.0.1:0", EventLoops: loops}, laterHandler{}))
		nc, br := dialLoop(t, srv)
		if _, err := nc.Write([]byte("PING\r\n")); err != nil { // the connection has run a command
			t.Fatal(err)
		}
		expectLines(t, br, "+PONG")
		if _, err := nc.Write([]byte("SLOW 30 a\r\nPING\r\n*1\r\n$x\r\nPING\r\n")); err != nil {
			t.Fatal(err)
		}
		expectLines(t, br, "$1", "a", "+PONG", "-ERR Protocol error: invalid bulk length")
		if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
			t.Fatalf("after the protocol error: %q, %v; want the connection closed", rest, err)
		}
	})
}

// A client that streams commands as fast as it can does not hold the event loop: another
// client's command is answered while the stream goes on, as in Redis, which reads one chunk
// per client per turn.
func TestLoopServesOthersDuringAStream(t *testing.T) {
	srv := loopServer(t, resp.Config{})
	blaster, bbr := dialLoop(t, srv)
	other, obr := dialLoop(t, srv)
	waitHeld(t, srv, 2)
	chunk := []byte(strings.Repeat("PING\r\n", 40000))
	const total = 2000 // chunks: 480 MB at most, ended as soon as the other client is answered
	var answered atomic.Bool
	wrote := make(chan int, 1)
	go func() { // the stream
		n := 0
		for ; n < total && !answered.Load(); n++ {
			if _, err := blaster.Write(chunk); err != nil {
				break
			}
		}
		wrote <- n
	}()
	go func() { _, _ = io.Copy(io.Discard, bbr) }() // the stream's replies
	time.Sleep(50 * time.Millisecond)               // the stream is under way
	if _, err := other.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	expectLines(t, obr, "+PONG")
	answered.Store(true)
	if n := <-wrote; n == total {
		t.Fatalf("the other client was answered only once the stream of %d chunks had been sent", n)
	}
}

// A client that stops reading its replies is cut off after the idle timeout, as Redis counts
// only successful writes as activity.
func TestClientNotReadingIsCutOff(t *testing.T) {
	inBothModes(t, func(t *testing.T, loops int) {
		cfg := resp.Config{Addr: "127.0.0.1:0", EventLoops: loops, IdleTimeout: 300 * time.Millisecond}
		srv := serveTest(t, resp.NewServer(cfg, waitsOn("NAP")(testCommands)))
		dialNotReading(t, srv)
		waitNoClients(t, srv, "with one that does not read cut off")
	})
}

// Shutdown ends in time, without error, even when a client has stopped reading its replies:
// such a client gets a grace period to take them, then is cut off.
func TestShutdownCutsOffAClientNotReading(t *testing.T) {
	inBothModes(t, func(t *testing.T, loops int) {
		srv := serveTest(t, resp.NewServer(resp.Config{Addr: "127.0.0.1:0", EventLoops: loops}, waitsOn("NAP")(testCommands)))
		dialNotReading(t, srv)
		time.Sleep(100 * time.Millisecond) // the server is blocked writing
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	})
}

// A client that pipelines commands whose replies come later (Later) and never reads them does
// not make the server run more than a few small batches of them (each at most maxLater, 128):
// once the replies due cannot be written, no more of its input runs, so the replies held for
// it stay bounded whatever it sends.
func TestLaterRepliesNotReadStopTheInput(t *testing.T) {
	if !resp.LoopsSupported {
		t.Skip("event loops need Linux")
	}
	srv := serveTest(t, resp.NewServer(resp.Config{Addr: "127.0.0.1:0", EventLoops: 1}, laterHandler{}))
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.(*net.TCPConn).SetReadBuffer(4096)
	hugeRun.Store(0)
	const sent = 8000 // 500 MiB of replies if all ran
	go func() { _, _ = nc.Write([]byte(strings.Repeat("HUGE\r\n", sent))) }()
	// Wait until the server has stopped running them (the count holds still), within a bound.
	last := int64(-1)
	for i := 0; i < 100 && hugeRun.Load() != last; i++ {
		last = hugeRun.Load()
		time.Sleep(100 * time.Millisecond)
	}
	if n := hugeRun.Load(); n > 4*128 { // a few batches of pending replies (maxLater), no more
		t.Fatalf("the server ran %d of %d commands whose replies the client does not read", n, sent)
	}
}
