package resp

// LoopHeld exposes how many connections the event loops hold, for tests.
func (s *Server) LoopHeld() int { return s.loopHeld() }

// LoopsSupported exposes whether this platform has event loops.
const LoopsSupported = loopsSupported
