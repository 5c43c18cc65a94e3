package upstream

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/vela-cache/vela/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLoop is a minimal event loop for Conn: one goroutine that runs posted tasks and calls the
// watch functions of ready descriptors, as resp's loop does.
type testLoop struct {
	epfd    int
	mu      sync.Mutex
	tasks   []func()
	stopped bool
	watched map[int32]func(uint32) // loop goroutine only
	done    chan struct{}
}

func newTestLoop(t *testing.T) *testLoop {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	l := &testLoop{epfd: epfd, watched: map[int32]func(uint32){}, done: make(chan struct{})}
	go l.run()
	t.Cleanup(func() {
		l.mu.Lock()
		l.stopped = true
		l.mu.Unlock()
		<-l.done
		_ = unix.Close(epfd)
	})
	return l
}

func (l *testLoop) run() {
	defer close(l.done)
	events := make([]unix.EpollEvent, 16)
	for {
		l.mu.Lock()
		tasks, stopped := l.tasks, l.stopped
		l.tasks = nil
		l.mu.Unlock()
		for _, fn := range tasks {
			fn()
		}
		if stopped {
			return
		}
		n, _ := unix.EpollWait(l.epfd, events, 5)
		for _, ev := range events[:max(n, 0)] {
			if fn := l.watched[ev.Fd]; fn != nil {
				fn(ev.Events)
			}
		}
	}
}

func (l *testLoop) Watch(fd int, fn func(uint32)) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	l.watched[int32(fd)] = fn
	return nil
}

func (l *testLoop) Unwatch(fd int) {
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	delete(l.watched, int32(fd))
}

func (l *testLoop) Post(fn func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.tasks = append(l.tasks, fn)
	return true
}

// on runs fn on the loop and waits for it.
func (l *testLoop) on(fn func()) {
	done := make(chan struct{})
	l.Post(func() { fn(); close(done) })
	<-done
}

// result is what a request completed with.
type result struct {
	reply string
	err   error
}

type request chan result

func (r request) Complete(reply []byte, err error) { r <- result{string(reply), err} }

func newConn(t *testing.T, l *testLoop, dial func() (net.Conn, error), timeout time.Duration) *Conn {
	var tasks sync.WaitGroup
	c := New(Config{Loop: l, Dial: dial, Timeout: timeout, Tasks: &tasks})
	t.Cleanup(func() {
		c.Shutdown(errors.New("closed"), time.Second)
		tasks.Wait()
	})
	return c
}

// send queues a command on c (on the loop) and flushes it.
func send(l *testLoop, c *Conn, cmd string) request {
	r := make(request, 1)
	l.on(func() {
		b := c.Buffer()
		*b = append(*b, cmd...)
		c.Push(r, errors.New("closed"))
		c.Flush()
	})
	return r
}

func wait(t *testing.T, r request) result {
	t.Helper()
	select {
	case res := <-r:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("request never completed")
		return result{}
	}
}

// Requests to a real redis-server complete in order with their whole replies, a large one too.
func TestConnAgainstRedis(t *testing.T) {
	rs := redistest.Start(t)
	l := newTestLoop(t)
	c := newConn(t, l, func() (net.Conn, error) { return net.DialTimeout("tcp", rs.Addr, time.Second) }, 2*time.Second)
	big := strings.Repeat("v", 200<<10) // several reads
	rs1 := send(l, c, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$"+strconv.Itoa(len(big))+"\r\n"+big+"\r\n")
	rs2 := send(l, c, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
	rs3 := send(l, c, "*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n")
	rs4 := send(l, c, "*1\r\n$4\r\nNOPE\r\n")
	for i, want := range []string{"+OK\r\n", "$" + strconv.Itoa(len(big)) + "\r\n" + big + "\r\n", "$-1\r\n"} {
		if got := wait(t, []request{rs1, rs2, rs3}[i]); got.err != nil || got.reply != want {
			t.Fatalf("reply %d: %.40q, %v", i, got.reply, got.err)
		}
	}
	if got := wait(t, rs4); got.err != nil || !strings.HasPrefix(got.reply, "-ERR unknown command") {
		t.Fatalf("error reply: %q, %v", got.reply, got.err)
	}
}

// A failed dial fails the requests queued before it began; one queued while it was under way
// gets a dial of its own, which succeeds here.
func TestConnDialFailure(t *testing.T) {
	rs := redistest.Start(t)
	l := newTestLoop(t)
	release := make(chan struct{})
	var calls sync.Mutex
	n := 0
	dial := func() (net.Conn, error) {
		calls.Lock()
		n++
		first := n == 1
		calls.Unlock()
		if first {
			<-release
			return nil, errors.New("no route")
		}
		return net.DialTimeout("tcp", rs.Addr, time.Second)
	}
	c := newConn(t, l, dial, 2*time.Second)
	early := send(l, c, "*1\r\n$4\r\nPING\r\n")
	late := send(l, c, "*1\r\n$4\r\nPING\r\n") // the first dial is under way
	close(release)
	if got := wait(t, early); got.err == nil || got.err.Error() != "no route" {
		t.Fatalf("request queued before the failed dial: %q, %v", got.reply, got.err)
	}
	if got := wait(t, late); got.err != nil || got.reply != "+PONG\r\n" {
		t.Fatalf("request queued during the failed dial: %q, %v", got.reply, got.err)
	}
}

// A server that never answers fails the requests with ErrNoReply after the timeout.
func TestConnNoReply(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close() // holds it open, silent
		}
	}()
	l := newTestLoop(t)
	c := newConn(t, l, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) }, 200*time.Millisecond)
	start := time.Now()
	got := wait(t, send(l, c, "*1\r\n$4\r\nPING\r\n"))
	if !errors.Is(got.err, ErrNoReply) {
		t.Fatalf("got %q, %v; want ErrNoReply", got.reply, got.err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("ErrNoReply after %v", d)
	}
}
