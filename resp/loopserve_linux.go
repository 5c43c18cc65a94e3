//go:build linux

package resp

import (
	"io"

	"golang.org/x/sys/unix"
)

// serve handles an event on c: it reads once and runs what arrived. Descriptors are registered
// edge-triggered, so a read that fills the room it was given may have left more in the socket,
// which no new event will report: c then goes on the unread list, served again next round after
// that round's events (as Redis reads one chunk per client per turn, so that a client streaming
// commands cannot hold the loop). A shorter read emptied the socket, unless the client has also
// shut its side down (EPOLLRDHUP, which no later event repeats): then c is read on to the end of
// the stream, its replies are written and it is closed, as Redis does. A parked connection is
// only marked: its input is read once its pending replies are computed (reading earlier could
// move the buffer that their keys alias).
func (l *loop) serve(c *Conn, events uint32) {
	if events&unix.EPOLLRDHUP != 0 {
		c.inputEnds = true
	}
	if c.parked {
		if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			l.close(c)
			return
		}
		c.inputSeen = true
		return
	}
	c.moreInput = false
	err := c.rd.FillFrom(c.fdio)
	if err != nil {
		if err == io.EOF && len(c.out) > 0 && !l.write(c) {
			return // handed to a goroutine, which writes the rest and closes, or closed
		}
		if err != unix.EAGAIN {
			l.close(c)
		}
		return
	}
	c.lastActive.Store(l.roundMilli)
	c.noteBuffers()
	more := c.rd.filled || c.inputEnds
	l.process(c)
	if !more || !c.inLoop {
		return
	}
	if c.parked {
		c.inputSeen = true
		return
	}
	c.moreInput = true
	if !c.unreadQueued { // once on the list, however many events fill the buffer this round
		c.unreadQueued = true
		l.unread = append(l.unread, c)
	}
}

// process runs the buffered commands of c and queues their replies, to be written at the end of
// the poll round (writeQueued). It parks c when replies are still being computed (see park).
func (l *loop) process(c *Conn) {
	defer func() {
		if p := recover(); p != nil { // a handler bug costs the client its connection only
			l.s.log.Error("panic serving connection", "client", c.ID, "panic", p)
			l.close(c)
		}
	}()
	ahead := 0 // commands left that the last prefetch covered
	for {
		if ahead == 0 && l.s.cfg.Prefetcher != nil {
			ahead = l.prefetch(c)
		}
		ahead--
		args, err := c.rd.Next()
		if err != nil {
			if len(c.waiting) > 0 { // answer the commands before it first
				l.park(c)
				return
			}
			l.handOff(c, nil, err) // the goroutine answers and lingers before closing
			return
		}
		if args == nil {
			break
		}
		if c.overLimit { // its goroutine admits a peer's handshake only
			l.handOff(c, args, nil)
			return
		}
		if c.pushing.Load() && len(c.waiting) == 0 {
			c.takePushes() // queued before this command: they go before its reply
		}
		reply, ok := l.s.inliner.TryServeRESP(c, args)
		if !ok {
			if len(c.waiting) > 0 {
				// It may have been declined only because it must not overtake the pending
				// replies: ask again once they are written.
				c.rd.Unread()
				l.park(c)
				return
			}
			l.handOff(c, args, nil)
			return
		}
		if c.muting {
			reply = c.filter(reply)
		}
		if reply.Later != nil || len(c.waiting) > 0 {
			c.waiting = append(c.waiting, reply) // not c.later: its Settle would block the loop
			if len(c.waiting) >= maxLater {
				l.park(c)
				return
			}
		} else {
			c.out = Append(c.out, reply, c.proto)
			if c.pushing.Load() {
				c.takePushes()
			}
		}
		if c.quit {
			if len(c.waiting) > 0 {
				l.park(c) // QUIT's reply is written with the others, then the connection closes
				return
			}
			l.write(c)
			if c.inLoop {
				l.close(c)
			}
			return
		}
		if len(c.out) > maxPendingOutput && len(c.waiting) == 0 && !l.write(c) {
			return
		}
	}
	if len(c.waiting) > 0 {
		l.park(c)
		return
	}
	l.queueWrite(c)
}

// prefetch lets Config.Prefetcher warm the CPU caches for the commands buffered on c,
// when there are several: a pipelined batch then takes the cache misses of its keys' lookups
// together instead of one command after the other. It returns how many commands it covered, at
// least 1.
func (l *loop) prefetch(c *Conn) int {
	n := c.rd.PeekKeys(l.keys[:])
	if n >= 2 {
		l.s.cfg.Prefetcher.Prefetch(l.keys[:n])
	}
	clear(l.keys[:n])
	return max(n, 1)
}

// queueWrite puts c on the list of connections whose buffered replies are written at the end of
// the poll round.
func (l *loop) queueWrite(c *Conn) {
	if len(c.out) > 0 && !c.writeQueued {
		c.writeQueued = true
		l.toWrite = append(l.toWrite, c)
	}
}

// writeQueued writes the replies the poll round buffered, as Redis does before it polls again
// (handleClientsWithPendingWrites). Writing each connection's replies as soon as its commands
// ran would wake the client for every one: the client, woken by the first reply, answers it and
// sleeps again before the next arrives, and each write then pays for a wake-up (an inter-
// processor interrupt, costly in a VM). Written together, the replies find the client awake.
// A connection parked since has its replies written when it resumes.
func (l *loop) writeQueued() {
	for i, c := range l.toWrite {
		l.toWrite[i] = nil
		c.writeQueued = false // before write, which may hand c off (unregister)
		if c.inLoop && !c.parked {
			l.write(c)
		}
	}
	l.toWrite = l.toWrite[:0]
}

// park makes c wait, without blocking the loop, for its Later replies: it starts them all
// (Flusher) and asks each to notify (Notifier); the last notification puts c on the loop's
// ready list, and resume writes the replies and goes on with c's input. A Later that cannot
// notify is waited for on a goroutine instead: c is handed off.
func (l *loop) park(c *Conn) {
	for _, r := range c.waiting {
		if r.Later == nil {
			continue
		}
		if _, ok := r.Later.(Notifier); !ok {
			l.handOff(c, nil, nil) // serveConn settles them, blocking
			return
		}
	}
	// Start the work behind the replies once every ready connection has queued its requests:
	// then one write carries them all (flushParked, at the end of the poll round).
	l.toFlush = append(l.toFlush, c)
	if c.notifyFn == nil {
		c.notifyFn = func() {
			if c.unparked.Add(-1) == 0 {
				l.ready(c)
			}
		}
		c.notifyLocalFn = func() {
			if c.unparked.Add(-1) == 0 {
				l.readyLocal = append(l.readyLocal, c)
			}
		}
	}
	c.parked = true
	c.unparked.Store(1) // held until every Notify is registered
	for _, r := range c.waiting {
		if r.Later == nil {
			continue
		}
		c.unparked.Add(1)
		fn := c.notifyFn
		if ln, ok := r.Later.(LoopNotifier); ok && ln.NotifiesOnLoop() {
			fn = c.notifyLocalFn
		}
		if !r.Later.(Notifier).Notify(fn) {
			c.unparked.Add(-1) // ready already
		}
	}
	if c.unparked.Add(-1) == 0 { // everything was ready
		l.resume(c)
	}
}

// resumeLocal resumes the connections whose replies the loop itself completed (LoopNotifier).
func (l *loop) resumeLocal() {
	for len(l.readyLocal) > 0 {
		c := l.readyLocal[0]
		l.readyLocal[0] = nil
		l.readyLocal = l.readyLocal[1:]
		l.resume(c)
	}
	l.readyLocal = l.readyLocal[:0:cap(l.readyLocal)]
}

// flushParked starts the Later replies of the connections parked in this poll round.
func (l *loop) flushParked() {
	for i, c := range l.toFlush {
		l.toFlush[i] = nil
		for _, r := range c.waiting {
			if f, ok := r.Later.(Flusher); ok {
				f.Flush()
			}
		}
	}
	l.toFlush = l.toFlush[:0]
}

// ready puts a parked connection whose replies are all computed on the loop's ready list. It is
// called from the goroutine that computed the last of them.
func (l *loop) ready(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || l.stopping {
		return // the loop closes c
	}
	l.readyList = append(l.readyList, c)
	l.wakeLocked()
}

// resume queues the replies of a connection that was parked and goes on with its input.
func (l *loop) resume(c *Conn) {
	if !c.inLoop || !c.parked {
		return // closed meanwhile
	}
	defer func() {
		if p := recover(); p != nil { // building a reply (Later.Reply) panicked
			l.s.log.Error("panic serving connection", "client", c.ID, "panic", p)
			l.close(c)
		}
	}()
	c.parked = false
	c.appendWaiting() // every Later is ready
	if c.quit {
		if l.write(c) {
			l.close(c)
		}
		return
	}
	if c.rd.Buffered() {
		// Write what is due before running more: a client that does not read its replies must
		// not make the loop pile up one batch of them after another (write hands c to a
		// goroutine, which stops reading it, when the socket is full).
		if len(c.out) > maxPendingOutput && !l.write(c) {
			return
		}
		l.process(c) // queues out with the replies of what it runs, or parks c again
	} else {
		l.queueWrite(c)
	}
	if c.inLoop && !c.parked && c.inputSeen {
		c.inputSeen = false
		l.serve(c, unix.EPOLLIN)
	}
}

// write sends the buffered replies of c. When the socket cannot take them all, c is handed to a
// goroutine, whose blocking write waits for room; write then reports false.
func (l *loop) write(c *Conn) bool {
	c.Settle()
	c.takePushes()
	for len(c.out) > 0 {
		n, err := c.fdio.Write(c.out)
		if n > 0 {
			c.netOut.Add(uint64(n))
			c.out = c.out[:copy(c.out, c.out[n:])]
			continue
		}
		if err == unix.EAGAIN {
			l.handOff(c, nil, nil)
		} else {
			l.close(c)
		}
		return false
	}
	if cap(c.out) > 4*maxPendingOutput {
		c.out = nil // do not keep a buffer grown by one huge reply
	}
	return true
}
