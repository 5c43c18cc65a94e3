//go:build !unix

package upstream

import "errors"

// waitFD is not available here: there are no event loops on this platform, so no Conn runs.
func waitFD(int, bool, int) error { return errors.ErrUnsupported }
