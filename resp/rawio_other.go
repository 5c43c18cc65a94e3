//go:build !unix

package resp

import (
	"errors"
	"net"
)

// RawRead is not available on this platform (no event loops run here).
func RawRead(int, []byte) (int, error) { return 0, errors.ErrUnsupported }

// RawWrite is not available on this platform (no event loops run here).
func RawWrite(int, []byte) (int, error) { return 0, errors.ErrUnsupported }

// DupFD is not available on this platform.
func DupFD(net.Conn) (int, error) { return -1, errors.ErrUnsupported }

// CloseFD is not available on this platform.
func CloseFD(int) error { return errors.ErrUnsupported }
