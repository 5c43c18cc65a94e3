//go:build linux

package resp

import (
	"io"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fdIO reads and writes a socket without blocking, through its RawConn so that the descriptor
// cannot be closed underneath. Its functions are built once per connection, so that a read or a
// write allocates nothing.
type fdIO struct {
	raw     syscall.RawConn
	fd      int32
	p       []byte
	n       int
	err     error
	readFn  func(uintptr) bool
	writeFn func(uintptr) bool
}

// Read reads once; it returns unix.EAGAIN when nothing is waiting and io.EOF when the peer closed.
func (f *fdIO) Read(p []byte) (int, error) {
	f.p = p
	err := f.raw.Read(f.readFn)
	f.p = nil
	if err != nil {
		return 0, err
	}
	return f.n, f.err
}

func (f *fdIO) read(fd uintptr) bool {
	n, err := RawRead(int(fd), f.p)
	switch {
	case n > 0:
		f.n, f.err = n, nil
	case err == nil:
		f.n, f.err = 0, io.EOF
	default:
		f.n, f.err = 0, err
	}
	return true // never wait: the loop is told when the socket is readable
}

// Write writes once; it returns unix.EAGAIN when the socket buffer is full.
func (f *fdIO) Write(p []byte) (int, error) {
	f.p = p
	err := f.raw.Write(f.writeFn)
	f.p = nil
	if err != nil {
		return 0, err
	}
	return f.n, f.err
}

func (f *fdIO) write(fd uintptr) bool {
	n, err := RawWrite(int(fd), f.p)
	if n < 0 {
		n = 0
	}
	f.n, f.err = n, err
	return true
}

// The system calls below never block: the sockets are non-blocking and the poll has a zero
// timeout. They are made without telling the scheduler (RawSyscall), which would otherwise
// hand the loop's P to another thread during each of them, costing more than the call itself.

// pollNow is epoll_wait with a zero timeout.
func pollNow(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
