//go:build !linux

package resp

import (
	"errors"
	"net"
)

// loopsSupported reports whether this platform has event loops; elsewhere than Linux every
// connection is served by a goroutine of its own.
const loopsSupported = false

// loop is the event loop of loop_linux.go; it is never created on this platform.
type loop struct{}

// fdIO is the non-blocking socket access of loop_linux.go; unused on this platform.
type fdIO struct{}

func (l *loop) attach(*Conn) bool { return false }

func wrapForLoop(nc net.Conn) net.Conn { return nc }
func (l *loop) give(*Conn) bool        { return false }
func (l *loop) stop()                  {}
func (l *loop) wakeForPush(*Conn)      {}

func (l *loop) pushedHere(*Conn) {}

func (lp *Loop) serves(*Conn) bool { return false }

func (s *Server) startLoops(int) error { return errors.New("resp: event loops need Linux") }

func (s *Server) loopHeld() int { return 0 }

// Loop is the event loop of loop_linux.go; it does not exist on this platform.
type Loop struct{}

// Loop returns nil: no connection is served by an event loop on this platform.
func (c *Conn) Loop() *Loop { return nil }

// Watch fails: there are no event loops on this platform.
func (lp *Loop) Watch(int, func(uint32)) error { return errors.New("resp: event loops need Linux") }

// Unwatch does nothing on this platform.
func (lp *Loop) Unwatch(int) {}

// Post reports false: there are no event loops on this platform.
func (lp *Loop) Post(func()) bool { return false }
