//go:build unix

package resp

import (
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
