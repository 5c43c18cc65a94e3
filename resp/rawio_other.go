//go:build !unix

package resp

import "errors"

// RawRead is not available on this platform (no event loops run here).
func RawRead(int, []byte) (int, error) { return 0, errors.ErrUnsupported }

// RawWrite is not available on this platform (no event loops run here).
func RawWrite(int, []byte) (int, error) { return 0, errors.ErrUnsupported }
