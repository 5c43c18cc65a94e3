//go:build unix

package resp

import (
	"errors"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RawRead reads from a non-blocking descriptor without telling the Go scheduler: a read that
// cannot block needs none of the bookkeeping of a system call that may (which, on an event loop,
// lets the runtime hand the loop's processor to another thread and wake it back). It returns
// unix.EAGAIN when nothing is waiting.
func RawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// RawWrite is RawRead's counterpart for writes.
func RawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// DupFD returns a new close-on-exec descriptor of nc's socket, which the caller owns. Closing nc
// then takes the socket out of the Go runtime's poller, so that the runtime no longer wakes a
// thread each time it becomes readable: it is left to whoever polls the duplicate (an event
// loop, see Loop.Watch).
func DupFD(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("resp: connection has no descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	err = raw.Control(func(d uintptr) {
		syscall.ForkLock.RLock() // so that no exec inherits it before it is close-on-exec
		defer syscall.ForkLock.RUnlock()
		if fd, dupErr = syscall.Dup(int(d)); dupErr == nil {
			syscall.CloseOnExec(fd)
		}
	})
	if err == nil {
		err = dupErr
	}
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// CloseFD closes a descriptor DupFD returned.
func CloseFD(fd int) error { return unix.Close(fd) }
