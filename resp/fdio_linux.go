//go:build linux

package resp

import (
	"io"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fdIO reads and writes a loop-mode socket without blocking, through the loop's own descriptor
// of it (sock), which only the connection's owner closes.
type fdIO struct {
	fd int32
	sk *sock
}

// Read reads once; it returns unix.EAGAIN when nothing is waiting and io.EOF when the peer closed.
func (f *fdIO) Read(p []byte) (int, error) {
	n, err := RawRead(int(f.fd), p)
	switch {
	case n > 0:
		return n, nil
	case err == nil:
		return 0, io.EOF
	default:
		return 0, err
	}
}

// Write writes once; it returns unix.EAGAIN when the socket buffer is full.
func (f *fdIO) Write(p []byte) (int, error) {
	n, err := RawWrite(int(f.fd), p)
	return max(n, 0), err
}

// The system calls below never block: the sockets are non-blocking and the poll has a zero
// timeout. They are made without telling the scheduler (RawSyscall), which would otherwise
// hand the loop's P to another thread during each of them, costing more than the call itself.

// pollNow is epoll_wait with a zero timeout.
func pollNow(epfd int, events []unix.EpollEvent) (int, error) { return waitEvents(epfd, events, 0) }

// waitEvents is epoll_wait with a timeout in milliseconds (-1: none). It holds the goroutine's
// processor while it waits (see loop.runBlocking).
func waitEvents(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(msec), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
