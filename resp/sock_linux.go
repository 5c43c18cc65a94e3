//go:build linux

package resp

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// sock is a client socket that an event loop may serve. Go's net.Conn keeps its descriptor in
// the runtime's own poller, which then wakes one of the runtime's threads for every request the
// client sends even though the loop, not the runtime, reads it: a system call and a context
// switch per request, which Redis does not pay. So the loop serves the socket through a
// descriptor of its own (fd), in no poller but the loop's, and the net.Conn exists only while a
// goroutine serves the connection ("goroutine mode": a command the loop declined, a reply the
// socket could not take, a protocol error). Leaving the loop makes a new one from a duplicate of
// fd (leaveLoop); going back closes it (enterLoop).
//
// sock is itself a net.Conn, so that the connection's code does not care which mode it is in:
// Read and Write go to the goroutine's net.Conn, and deadlines are kept across modes, as one
// net.Conn would keep them. CloseRead, CloseWrite and Close act on fd, under mu, so that Kill
// (from any goroutine) never shuts down a descriptor number that a close has freed for reuse.
type sock struct {
	fd           int
	laddr, raddr net.Addr

	mu     sync.Mutex // guards the fields below; nc is written only by the connection's owner
	nc     net.Conn   // goroutine mode; nil in loop mode
	closed bool
	rdl    time.Time // read deadline
	wdl    time.Time // write deadline
}

// errLoopMode is returned by I/O on a sock the event loop serves: nothing but the loop may
// read or write it then.
var errLoopMode = errors.New("resp: socket is served by an event loop")

// newSock duplicates nc's descriptor for the loop. nc stays the connection's until the loop
// takes it (enterLoop).
func newSock(nc net.Conn) (*sock, error) {
	fd, err := DupFD(nc)
	if err != nil {
		return nil, err
	}
	return &sock{fd: fd, laddr: nc.LocalAddr(), raddr: nc.RemoteAddr(), nc: nc}, nil
}

// enterLoop closes the goroutine mode's net.Conn, taking the socket out of the runtime's
// poller: from now on only the loop serves it, through fd. The connection's owner calls it.
func (s *sock) enterLoop() {
	s.mu.Lock()
	nc := s.nc
	s.nc = nil
	s.mu.Unlock()
	if nc != nil {
		_ = nc.Close() // fd keeps the socket open
	}
}

// leaveLoop makes the net.Conn a goroutine serves the socket with, from a duplicate of fd, and
// gives it the deadlines set so far. The connection's owner (the loop handing it off) calls it.
func (s *sock) leaveLoop() error {
	dup, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), "client") // net.FileConn takes a duplicate of its own
	nc, err := net.FileConn(f)              // its own duplicate, in the runtime's poller
	_ = f.Close()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = nc.Close()
		return net.ErrClosed
	}
	if !s.rdl.IsZero() {
		_ = nc.SetReadDeadline(s.rdl)
	}
	if !s.wdl.IsZero() {
		_ = nc.SetWriteDeadline(s.wdl)
	}
	s.nc = nc
	return nil
}

// Read reads in goroutine mode: the connection's goroutine, or the watcher it starts while a
// command waits (Conn.Blocking). nc is replaced only by the connection's owner, never while a
// watcher runs, so it is read here without the lock.
func (s *sock) Read(p []byte) (int, error) {
	if s.nc == nil {
		return 0, errLoopMode
	}
	return s.nc.Read(p)
}

// Write writes in goroutine mode.
func (s *sock) Write(p []byte) (int, error) {
	if s.nc == nil {
		return 0, errLoopMode
	}
	return s.nc.Write(p)
}

// Close closes the socket.
func (s *sock) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	s.closed = true
	if s.nc != nil {
		_ = s.nc.Close()
	}
	return unix.Close(s.fd)
}

// CloseRead shuts down the reading side: whoever serves the socket reads the end of the stream.
func (s *sock) CloseRead() error { return s.shutdown(unix.SHUT_RD) }

// CloseWrite shuts down the writing side.
func (s *sock) CloseWrite() error { return s.shutdown(unix.SHUT_WR) }

func (s *sock) shutdown(how int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	return unix.Shutdown(s.fd, how)
}

// LocalAddr is the server's address.
func (s *sock) LocalAddr() net.Addr { return s.laddr }

// RemoteAddr is the client's address.
func (s *sock) RemoteAddr() net.Addr { return s.raddr }

// SetDeadline sets both deadlines.
func (s *sock) SetDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rdl, s.wdl = t, t
	if s.nc != nil {
		return s.nc.SetDeadline(t)
	}
	return nil
}

// SetReadDeadline sets the read deadline, now or when the socket leaves the loop.
func (s *sock) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rdl = t
	if s.nc != nil {
		return s.nc.SetReadDeadline(t)
	}
	return nil
}

// SetWriteDeadline sets the write deadline, now or when the socket leaves the loop.
func (s *sock) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wdl = t
	if s.nc != nil {
		return s.nc.SetWriteDeadline(t)
	}
	return nil
}
