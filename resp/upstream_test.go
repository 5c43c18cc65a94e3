//go:build linux

package resp_test

import (
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vela-cache/vela/resp"
)

// echoUpstream is what a store that the event loop drives looks like to the loop: one end of a
// socket pair the loop watches (Loop.Watch), whose other end a goroutine echoes back line by
// line. ECHO v sends v upstream and answers with the echoed line, through a LoopNotifier.
type echoUpstream struct {
	fd      int
	lp      *resp.Loop
	pending []*echoLater // awaiting their echo, oldest first
	buf     []byte
}

type echoLater struct {
	fn    func()
	reply resp.Reply
	done  bool
}

func (l *echoLater) Notify(fn func()) bool {
	if l.done {
		return false
	}
	l.fn = fn
	return true
}
func (l *echoLater) NotifiesOnLoop() bool { return true }
func (l *echoLater) Reply() resp.Reply    { return l.reply }
func (l *echoLater) Flush()               {}

// readable reads the echoed lines and completes the oldest Laters, on the loop.
func (u *echoUpstream) readable(uint32) {
	var b [4096]byte
	for {
		n, err := unix.Read(u.fd, b[:])
		if n <= 0 || err != nil {
			break
		}
		u.buf = append(u.buf, b[:n]...)
	}
	for {
		i := strings.IndexByte(string(u.buf), '\n')
		if i < 0 || len(u.pending) == 0 {
			return
		}
		l := u.pending[0]
		u.pending = u.pending[1:]
		l.reply, l.done = resp.BulkString(string(u.buf[:i])), true
		u.buf = u.buf[i+1:]
		if l.fn != nil {
			l.fn()
		}
	}
}

type upstreamHandler struct {
	mu   sync.Mutex
	up   *echoUpstream
	peer *os.File // the goroutine's end
}

func (h *upstreamHandler) ServeRESP(c *resp.Conn, args [][]byte) resp.Reply {
	return resp.Error("ERR only on the loop")
}

func (h *upstreamHandler) TryServeRESP(c *resp.Conn, args [][]byte) (resp.Reply, bool) {
	lp := c.Loop()
	if lp == nil {
		return resp.Reply{}, false
	}
	switch strings.ToUpper(string(args[0])) {
	case "BOOM": // a task that panics must cost the loop nothing
		lp.Post(func() { panic("task bug") })
		return resp.OK, true
	case "ECHO":
		h.mu.Lock()
		up := h.up
		h.mu.Unlock()
		if up.lp == nil {
			if err := lp.Watch(up.fd, up.readable); err != nil {
				return resp.Error("ERR " + err.Error()), true
			}
			up.lp = lp
		}
		l := &echoLater{}
		up.pending = append(up.pending, l)
		if _, err := unix.Write(up.fd, append(args[1:2:2][0], '\n')); err != nil {
			return resp.Error("ERR " + err.Error()), true
		}
		return resp.Reply{Later: l}, true
	}
	return resp.Status("PONG"), true
}

// The event loop watches a descriptor for code running on it and resumes the connections whose
// replies that code completes, in order; posted tasks run on the loop, a panicking one is
// contained, and Post reports false once the loop has stopped.
func TestLoopWatchAndPost(t *testing.T) {
	if !resp.LoopsSupported {
		t.Skip("event loops need Linux")
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	if err := unix.SetNonblock(fds[1], false); err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(fds[1]), "echo")
	defer peer.Close()
	go func() { _, _ = io.Copy(peer, peer) }() // the echo: ends when the test closes fds[0]
	h := &upstreamHandler{up: &echoUpstream{fd: fds[0]}, peer: peer}
	srv := serveTest(t, resp.NewServer(resp.Config{Addr: "127.0.0.1:0", EventLoops: 1}, h))
	a, abr := dialLoop(t, srv)
	b, bbr := dialLoop(t, srv)
	waitHeld(t, srv, 2)
	if _, err := a.Write([]byte("ECHO one\r\nPING\r\nECHO two\r\nBOOM\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("ECHO three\r\n")); err != nil {
		t.Fatal(err)
	}
	expectLines(t, abr, "$3", "one", "+PONG", "$3", "two", "+OK")
	expectLines(t, bbr, "$5", "three")
	for range 3 { // the loop still serves after the panic
		if _, err := b.Write([]byte("ECHO again\r\n")); err != nil {
			t.Fatal(err)
		}
		expectLines(t, bbr, "$5", "again")
	}
	waitHeld(t, srv, 2)
	h.mu.Lock()
	lp := h.up.lp
	h.mu.Unlock()
	ran := make(chan struct{})
	if !lp.Post(func() { lp.Unwatch(fds[0]); close(ran) }) {
		t.Fatal("Post refused while the loop runs")
	}
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the posted task did not run")
	}
	_ = srv.Shutdown(t.Context())
	if lp.Post(func() {}) {
		t.Fatal("Post accepted after the loop stopped")
	}
}
