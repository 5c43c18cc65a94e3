//go:build linux || darwin

package peer

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// peerClosed looks, without waiting and without consuming anything, at what an idle connection
// holds: io.EOF or the socket's error when the peer has closed it, an error when it sent
// something nobody asked for, nil when it is quiet. Connections without a descriptor pass.
func peerClosed(nc net.Conn) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var n int
	var rerr error
	// Control, not Read: an expired read deadline would make Read fail without looking.
	if err := raw.Control(func(fd uintptr) {
		var b [1]byte
		for {
			n, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if rerr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	switch {
	case rerr == syscall.EAGAIN:
		return nil
	case rerr != nil:
		return rerr
	case n == 0:
		return io.EOF
	}
	return errUnsolicited
}

// errUnsolicited: an idle connection held bytes no request asked for.
var errUnsolicited = errors.New("unexpected data on an idle connection")
