package resp_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vela-cache/vela/resp"
)

// pushServer serves PING and HOLD, which hands the calling connection to held so that the test
// can push to it from its own goroutines.
func pushServer(t *testing.T, cfg resp.Config, held chan<- *resp.Conn) *resp.Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	return serveTest(t, resp.NewServer(cfg, resp.HandlerFunc(func(c *resp.Conn, args [][]byte) resp.Reply {
		if strings.EqualFold(string(args[0]), "HOLD") {
			held <- c
		}
		return resp.Status("PONG")
	})))
}

// dialHeld connects to srv and sends HOLD, and returns the connection, its reader and the
// server's side of it.
func dialHeld(t *testing.T, srv *resp.Server, held <-chan *resp.Conn) (net.Conn, *bufio.Reader, *resp.Conn) {
	t.Helper()
	nc, br := dialLoop(t, srv)
	if _, err := nc.Write([]byte("HOLD\r\n")); err != nil {
		t.Fatal(err)
	}
	expectLines(t, br, "+PONG")
	return nc, br, <-held
}

// TestPushReachesIdleClient: pushes from many goroutines reach a connection that sends nothing,
// on an event loop and on a goroutine (whose wait for input they cut short, again and again),
// whole and never inside a reply; a later command's reply follows them.
func TestPushReachesIdleClient(t *testing.T) { inBothModes(t, testPushReachesIdleClient) }

func testPushReachesIdleClient(t *testing.T, loops int) {
	held := make(chan *resp.Conn, 1)
	srv := pushServer(t, resp.Config{EventLoops: loops}, held)
	nc, br, c := dialHeld(t, srv, held)
	const senders, each = 8, 200
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := fmt.Sprintf(">2\r\n$4\r\nnote\r\n$%d\r\n%d:%d\r\n", len(fmt.Sprintf("%d:%d", s, i)), s, i)
				if !c.Push([]byte(msg)) {
					t.Error("push refused")
					return
				}
				if i%50 == 0 {
					time.Sleep(time.Millisecond) // let the connection go idle again
				}
			}
		}()
	}
	got := map[string]bool{}
	for len(got) < senders*each {
		readPush(t, br, got)
	}
	wg.Wait()
	c.Push([]byte(">2\r\n$4\r\nnote\r\n$4\r\nlast\r\n"))
	if _, err := nc.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	readPush(t, br, got) // queued before PING ran: before its reply
	if !got["last"] {
		t.Fatal("the push queued before PING did not come first")
	}
	expectLines(t, br, "+PONG")
}

// readPush reads one ">2 note x" message into got.
func readPush(t *testing.T, br *bufio.Reader, got map[string]bool) {
	t.Helper()
	var lines [5]string
	for i := range lines {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a push after %d: %v", len(got), err)
		}
		lines[i] = strings.TrimRight(l, "\r\n")
	}
	if lines[0] != ">2" || lines[2] != "note" {
		t.Fatalf("not a whole push: %q", lines)
	}
	got[lines[4]] = true
}

// TestPushKeepsIdleTimeout: on a goroutine, pushes cut the connection's wait for input short,
// but the idle timeout still closes a client that sends nothing.
func TestPushKeepsIdleTimeout(t *testing.T) {
	held := make(chan *resp.Conn, 1)
	srv := pushServer(t, resp.Config{IdleTimeout: 300 * time.Millisecond}, held)
	_, br, c := dialHeld(t, srv, held)
	start := time.Now()
	for range 5 {
		c.Push([]byte(">1\r\n$1\r\nx\r\n"))
		expectLines(t, br, ">1", "$1", "x")
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the idle timeout: %v, want the connection closed", err)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", took)
	}
}

// TestPushBound: a client that reads nothing is disconnected once its queued pushes pass the
// bound, and Push refuses more.
func TestPushBound(t *testing.T) { inBothModes(t, testPushBound) }

func testPushBound(t *testing.T, loops int) {
	held := make(chan *resp.Conn, 1)
	srv := pushServer(t, resp.Config{EventLoops: loops}, held)
	_, _, c := dialHeld(t, srv, held)
	msg := []byte(">1\r\n$1048576\r\n" + strings.Repeat("x", 1<<20) + "\r\n")
	refused := false
	for i := 0; i < 1024 && !refused; i++ {
		refused = !c.Push(msg)
	}
	if !refused {
		t.Fatal("1 GiB of pushes to a client that reads none were all queued")
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.ClientCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the connection is still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPushAfterPendingReplies: a push queued while replies of earlier commands are still being
// computed (Later) goes after all of them, never between two: it may concern the last one (an
// invalidation of the key it read), on an event loop and on a goroutine.
func TestPushAfterPendingReplies(t *testing.T) { inBothModes(t, testPushAfterPendingReplies) }

func testPushAfterPendingReplies(t *testing.T, loops int) {
	held := make(chan *resp.Conn, 1)
	cfg := resp.Config{Addr: "127.0.0.1:0", EventLoops: loops}
	srv := serveTest(t, resp.NewServer(cfg, resp.HandlerFunc(func(c *resp.Conn, args [][]byte) resp.Reply {
		switch strings.ToUpper(string(args[0])) {
		case "HOLD":
			held <- c
		case "SLOW": // a reply computed later
			return resp.Reply{Later: newTimedLater(100*time.Millisecond, resp.BulkString(string(args[1])))}
		case "LAST": // its reply is ready, behind the slow one; a push is queued as it runs
			c.Push([]byte(">2\r\n$4\r\nnote\r\n$4\r\nlast\r\n"))
			return resp.BulkString(string(args[1]))
		}
		return resp.Status("PONG")
	})))
	nc, br, _ := dialHeld(t, srv, held)
	if _, err := nc.Write([]byte("SLOW one\r\nLAST two\r\n")); err != nil {
		t.Fatal(err)
	}
	expectLines(t, br, "$3", "one", "$3", "two", ">2", "$4", "note", "$4", "last")
}
