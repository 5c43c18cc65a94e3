package resp_test

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vela-cache/vela/resp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// blockingServer serves WAIT (blocks in Conn.Blocking until the connection's context ends, then
// reports on ended), NAP ms (blocks in Conn.Blocking for ms, replies with its argument echoed
// back after the wait, which proves the argument survived) and PING.
func blockingServer(t *testing.T, loops int, ended chan<- error) *resp.Server {
	t.Helper()
	srv := resp.NewServer(resp.Config{Addr: "127.0.0.1:0", EventLoops: loops}, waitsOn("WAIT", "NAP")(func(c *resp.Conn, args [][]byte) resp.Reply {
		switch strings.ToUpper(string(args[0])) {
		case "WAIT":
			c.Blocking(func() { <-c.Context().Done() })
			ended <- c.Context().Err()
			return resp.OK
		case "NAP":
			d, _ := time.ParseDuration(string(args[1]) + "ms")
			c.Blocking(func() {
				select {
				case <-time.After(d):
				case <-c.Context().Done():
				}
			})
			return resp.Bulk(args[1])
		}
		return resp.Status("PONG")
	}))
	return serveTest(t, srv)
}

// A client that disconnects while its command waits in Blocking is noticed at once: the wait's
// context is cancelled and the connection is closed, with no goroutine left behind.
func TestBlockingNoticesDisconnect(t *testing.T) { inBothModes(t, testBlockingNoticesDisconnect) }

func testBlockingNoticesDisconnect(t *testing.T, loops int) {
	ended := make(chan error, 1)
	srv := blockingServer(t, loops, ended)
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write([]byte("WAIT\r\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.ClientCount() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the command start waiting
	_ = nc.Close()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("wait ended without its context being cancelled")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a disconnected client's wait was not cancelled")
	}
	for srv.ClientCount() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.ClientCount(); n != 0 {
		t.Fatalf("%d connections left after the client went away", n)
	}
}

// Commands pipelined behind a blocking one, read by the watcher during the wait, run afterwards
// in order; the blocking command's own argument is intact when it replies.
func TestBlockingKeepsPipelinedCommands(t *testing.T) {
	inBothModes(t, testBlockingKeepsPipelinedCommands)
}

func testBlockingKeepsPipelinedCommands(t *testing.T, loops int) {
	srv := blockingServer(t, loops, make(chan error, 1))
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	// The first write arrives alone; the second arrives while NAP waits and is read by the watcher.
	if _, err := nc.Write([]byte("*2\r\n$3\r\nNAP\r\n$3\r\n150\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := nc.Write([]byte("PING\r\n*2\r\n$3\r\nNAP\r\n$1\r\n1\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	want := []string{"$3", "150", "+PONG", "$1", "1", "+PONG"}
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

// Shutdown is not held up by a client whose command is waiting in Blocking beyond the shutdown
// deadline: the wait is cancelled and Shutdown reports the deadline.
func TestBlockingShutdown(t *testing.T) { inBothModes(t, testBlockingShutdown) }

func testBlockingShutdown(t *testing.T, loops int) {
	ended := make(chan error, 1)
	srv := resp.NewServer(resp.Config{Addr: "127.0.0.1:0", EventLoops: loops}, waitsOn("WAIT")(func(c *resp.Conn, args [][]byte) resp.Reply {
		c.Blocking(func() { <-c.Context().Done() })
		ended <- c.Context().Err()
		return resp.OK
	}))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("WAIT\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned nil while a command was still waiting at its deadline")
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("waiting command not cancelled by Shutdown")
	}
}

// After a blocking command, the watcher's pending read becomes the connection's next read: a
// command sent after the reply is served, and the idle timeout applies again.
func TestBlockingReadCarriesOver(t *testing.T) { inBothModes(t, testBlockingReadCarriesOver) }

func testBlockingReadCarriesOver(t *testing.T, loops int) {
	srv := resp.NewServer(resp.Config{Addr: "127.0.0.1:0", IdleTimeout: 300 * time.Millisecond, EventLoops: loops},
		waitsOn("NAP")(func(c *resp.Conn, args [][]byte) resp.Reply {
			if strings.EqualFold(string(args[0]), "NAP") {
				c.Blocking(func() { time.Sleep(10 * time.Millisecond) })
				return resp.OK
			}
			return resp.Status("PONG")
		}))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	expect := func(send, want string) {
		t.Helper()
		if _, err := nc.Write([]byte(send)); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil || strings.TrimRight(line, "\r\n") != want {
			t.Fatalf("%q: got %q, %v; want %q", send, line, err, want)
		}
	}
	for range 3 {
		expect("NAP\r\n", "+OK")
		time.Sleep(20 * time.Millisecond) // the reply is out; the watcher's read is pending
		expect("PING\r\n", "+PONG")
		expect("NAP\r\nNAP\r\n", "+OK") // the second wait reuses the pending watcher
		if line, err := br.ReadString('\n'); err != nil || line != "+OK\r\n" {
			t.Fatalf("second pipelined NAP: %q, %v", line, err)
		}
	}
	// Idle now: the idle timeout closes the connection.
	start := time.Now()
	if _, err := br.ReadString('\n'); err == nil {
		t.Fatal("read a reply nobody asked for")
	}
	if waited := time.Since(start); waited < 250*time.Millisecond || waited > 5*time.Second {
		t.Fatalf("connection closed after %v idle, want about 300 ms", waited)
	}
}
