//go:build unix

package upstream

import "golang.org/x/sys/unix"

// waitFD waits up to ms milliseconds for fd to become readable (or writable, with out).
func waitFD(fd int, out bool, ms int) error {
	events := int16(unix.POLLIN)
	if out {
		events |= unix.POLLOUT
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	if _, err := unix.Poll(fds, ms); err != nil && err != unix.EINTR {
		return err
	}
	return nil
}
