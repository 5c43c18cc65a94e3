//go:build !linux

package resp

import "errors"

// loopsSupported reports whether this platform has event loops; elsewhere than Linux every
// connection is served by a goroutine of its own.
const loopsSupported = false

// loop is the event loop of loop_linux.go; it is never created on this platform.
type loop struct{}

// fdIO is the non-blocking socket access of loop_linux.go; unused on this platform.
type fdIO struct{}

func (l *loop) attach(*Conn) bool { return false }
func (l *loop) give(*Conn) bool   { return false }
func (l *loop) stop()             {}

func (s *Server) startLoops(int) error { return errors.New("resp: event loops need Linux") }

func (s *Server) loopHeld() int { return 0 }
