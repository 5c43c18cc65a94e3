//go:build linux

package resp

import (
	"errors"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// loopsSupported reports whether this platform has event loops (epoll).
const loopsSupported = true

// loop is one epoll event loop. The connections registered with it are in "loop mode": the loop
// reads them when the kernel says they are readable, runs their commands in-line and writes the
// replies, so that a request costs one read and one write system call and no goroutine switch,
// as in Redis (loopserve_linux.go). A connection whose replies are still being computed (Later
// replies that notify: cluster forwards, pipelined Redis calls) is parked until they are ready,
// while the loop serves the others. A command that may wait (the Inliner declines it), a reply
// that does not fit in the socket or a protocol error hands the connection to a goroutine of its
// own (serveConn), which gives it back after a run of commands the loop could have run.
//
// The loop goroutine alone touches a registered connection. Other goroutines reach it through
// incoming (connections to register), readyList (parked connections whose replies are ready) and
// stop, all behind mu, and wake it through an eventfd.
type loop struct {
	s         *Server
	epfd      int
	blocking  bool            // the loop sleeps in epoll_pwait itself (waitBlocking); else parks in the scheduler
	file      *os.File        // epfd, registered with the runtime's poller (not blocking)
	raw       syscall.RawConn // file's, to park until epfd is readable (not blocking)
	pollFn    func(uintptr) bool
	pollErr   error         // error of the last poll
	ended     bool          // a round found that the loop must end (it has closed everything)
	tick      time.Duration // interval of the idle sweep (0: no idle timeout)
	nextSweep time.Time     // when the next idle sweep is due
	wakefd    int
	events    []unix.EpollEvent
	conns     map[int32]*Conn // registered connections by descriptor; the loop goroutine only
	held      atomic.Int64    // len(conns), for other goroutines (tests)
	wakeb     [8]byte
	toFlush   []*Conn // parked in this poll round, their Later replies not yet flushed
	toWrite   []*Conn // replies buffered in this poll round, written at its end
	// unread holds the connections that may have more input than one read took (moreInput):
	// the next round serves them after its events, so one client streaming commands cannot
	// keep the loop from the others. spareUnread is the other list, swapped with it each round.
	unread, spareUnread []*Conn
	roundMilli          int64                  // unix ms at the start of the poll round
	handle              *Loop                  // what code running on the loop sees of it
	watched             map[int32]func(uint32) // descriptors watched for that code (Loop.Watch)
	readyLocal          []*Conn                // parked connections the loop's own work made ready (LoopNotifier)
	pushedLocal         []*Conn                // connections the loop's own work pushed to (Conn.PushFrom)
	keys                [prefetchBatch][]byte  // scratch for prefetch

	mu         sync.Mutex
	incoming   []*Conn  // handed to the loop, not yet registered
	readyList  []*Conn  // parked connections whose replies are ready
	tasks      []func() // posted to run on the loop (Loop.Post)
	pushed     []*Conn  // connections with pushes queued since the loop last looked (wakeForPush)
	sparePush  []*Conn  // the other pushed list, swapped with pushed by the loop
	spareTasks []func() // the other task list, swapped with tasks by the loop
	spareReady []*Conn  // the other ready list, swapped with readyList by the loop
	woken      bool     // wakefd has been written since the loop last drained it
	stopping   bool     // Shutdown asked the loop to end; it registers nothing any more
	stopped    bool     // the loop has ended (or is closing everything): wakefd is closed
}

// prefetchBatch is the most pipelined commands of one connection prefetched at once.
const prefetchBatch = 16

// newLoop creates the epoll instance and the eventfd that wakes it. A blocking loop sleeps in
// epoll_pwait; any other parks in the scheduler until the runtime's poller finds its epoll
// descriptor readable (see run).
func newLoop(s *Server, blocking bool) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev)
	if err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		return nil, err
	}
	l := &loop{s: s, epfd: epfd, blocking: blocking, wakefd: wakefd,
		events: make([]unix.EpollEvent, 256), conns: make(map[int32]*Conn), watched: make(map[int32]func(uint32))}
	l.handle = &Loop{l: l}
	if blocking {
		return l, nil
	}
	// Non-blocking, so that os.NewFile registers it with the runtime's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		l.closeFDs()
		return nil, err
	}
	l.file = os.NewFile(uintptr(epfd), "epoll")
	if l.raw, err = l.file.SyscallConn(); err != nil {
		l.closeFDs()
		return nil, err
	}
	l.pollFn = l.poll
	return l, nil
}

// closeFDs closes the epoll descriptor and the eventfd of a loop that never ran.
func (l *loop) closeFDs() {
	if l.file != nil {
		_ = l.file.Close()
	} else {
		_ = unix.Close(l.epfd)
	}
	_ = unix.Close(l.wakefd)
}

// wrapForLoop gives an accepted connection the descriptor an event loop serves it through
// (sock). A connection it cannot wrap (no descriptor, none left) stays in goroutine mode.
func wrapForLoop(nc net.Conn) net.Conn {
	if sk, err := newSock(nc); err == nil {
		return sk
	}
	return nc
}

// attach prepares c for loop mode. It reports false when c must stay in goroutine mode.
func (l *loop) attach(c *Conn) bool {
	sk, ok := c.nc.(*sock)
	if !ok {
		return false
	}
	c.loop = l
	c.fdio = &fdIO{fd: int32(sk.fd), sk: sk}
	return true
}

// give hands c to the loop, from the accept loop or from the goroutine serving c, which must not
// touch c afterwards. It reports false when the loop has stopped; the caller then keeps c.
func (l *loop) give(c *Conn) bool {
	l.mu.Lock()
	if l.stopped || l.stopping {
		l.mu.Unlock()
		return false
	}
	l.incoming = append(l.incoming, c)
	l.wakeLocked()
	l.mu.Unlock()
	return true
}

// stop asks the loop to close its connections and end.
func (l *loop) stop() {
	l.mu.Lock()
	if !l.stopped {
		l.stopping = true
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// wakeLocked makes the loop's next poll return, unless a wake-up is pending already. The caller
// holds mu, and the loop has not stopped (it closes wakefd under mu).
func (l *loop) wakeLocked() {
	if l.woken || l.stopped {
		return
	}
	l.woken = true
	var one = [8]byte{1}
	_, _ = unix.Write(l.wakefd, one[:])
}

// run is the loop goroutine. It ends after stop, having closed every connection it held.
//
// A blocking loop sleeps in epoll_pwait itself (runBlocking). Any other never blocks in a system
// call: it polls its epoll instance without waiting, and when nothing is ready it parks in the Go
// scheduler until the runtime's own poller reports the epoll descriptor readable. A blocking
// epoll_wait made the way Go makes system calls that may block would let the runtime hand the
// loop's processor to another thread each time and wake its monitor thread on return: three
// times Redis's context switches.
func (l *loop) run() {
	defer l.s.loops.Done()
	defer func() {
		if l.file != nil {
			_ = l.file.Close() // the epoll descriptor
		} else {
			_ = unix.Close(l.epfd)
		}
		l.mu.Lock() // wakefd is written under mu, and only while not stopped
		l.stopped = true
		_ = unix.Close(l.wakefd)
		tasks := l.tasks
		l.tasks = nil
		l.mu.Unlock()
		for _, fn := range tasks { // a posted task runs even when the loop ends first
			l.runTask(fn)
		}
	}()
	idle := l.s.cfg.IdleTimeout
	if idle > 0 {
		l.tick = min(max(idle/10, 10*time.Millisecond), time.Second)
		l.nextSweep = time.Now().Add(l.tick)
	}
	if l.blocking {
		defer blockingLoops.Add(-1)
		l.runBlocking(idle)
		return
	}
	if idle > 0 {
		_ = l.file.SetReadDeadline(l.nextSweep)
	}
	for {
		err := l.raw.Read(l.pollFn)
		if l.ended {
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = nil
		}
		if err == nil {
			err = l.pollErr
		}
		if err != nil {
			l.s.log.Error("event loop failed; its clients are closed", "err", err)
			l.closeAll()
			return
		}
		if now := time.Now(); l.tick > 0 && !now.Before(l.nextSweep) {
			l.closeIdle(idle)
			l.nextSweep = now.Add(l.tick)
			_ = l.file.SetReadDeadline(l.nextSweep)
		}
	}
}

// runBlocking is run for a blocking loop. It sleeps in epoll_pwait, as Redis does, until an
// event or the next idle sweep. The wait is a raw system call, so the runtime does not take the
// loop's processor away during it (which costs a handoff to another thread and a wake-up of the
// runtime's monitor thread per wait): the loop holds its processor for good, so a server has
// blocking loops only when they leave the runtime at least one (startLoops). The runtime still
// preempts the loop: it signals a goroutine it wants to stop (for a garbage collection, or one
// that has held its processor for 10 ms), the signal ends the wait early (EINTR), and the loop
// yields.
func (l *loop) runBlocking(idle time.Duration) {
	for {
		timeout := -1
		if len(l.unread) > 0 {
			timeout = 0
		} else if l.tick > 0 {
			timeout = max(int(time.Until(l.nextSweep).Milliseconds())+1, 0)
		}
		n, err := waitEvents(l.epfd, l.events, timeout)
		if err == unix.EINTR {
			runtime.Gosched()
			continue
		}
		if err != nil {
			l.s.log.Error("event loop failed; its clients are closed", "err", err)
			l.closeAll()
			return
		}
		if (n > 0 || len(l.unread) > 0) && !l.round(n) {
			return
		}
		if l.tick > 0 {
			if now := time.Now(); !now.Before(l.nextSweep) {
				l.closeIdle(idle)
				l.nextSweep = now.Add(l.tick)
			}
		}
	}
}

// poll is the loop's RawConn read function, called by the runtime when the epoll descriptor may
// be readable. It runs poll rounds (round) as long as epoll has events, then tells the runtime to
// park the loop until the descriptor is readable again. It returns true, ending the Read, to
// let run sweep idle connections, end the loop or report an error.
//
// It does not poll once more after a round before parking, which on a lightly loaded loop would
// be a system call that finds nothing. Edge-triggered registrations (every connection and watched
// descriptor; the eventfd is drained when reported) make each event that arrives after a poll
// also mark the epoll descriptor readable for the runtime, so the park returns at once when
// something arrived during the round. A poll that filled events may have left some: poll again.
func (l *loop) poll(uintptr) bool {
	for {
		n, err := pollNow(l.epfd, l.events)
		if err == unix.EINTR {
			n, err = 0, nil
		}
		if err != nil {
			l.pollErr = err
			return true
		}
		if n == 0 && len(l.unread) == 0 {
			return false
		}
		if !l.round(n) {
			l.ended = true
			return true
		}
		if l.tick > 0 && l.roundMilli >= l.nextSweep.UnixMilli() {
			return true
		}
		if n < len(l.events) && len(l.unread) == 0 {
			return false
		}
	}
}

// round serves the n events of one poll, then starts the requests the parked connections queued
// and writes the replies. It reports false when the loop must end.
func (l *loop) round(n int) bool {
	l.roundMilli = time.Now().UnixMilli()
	unread := l.unread
	l.unread, l.spareUnread = l.spareUnread[:0], unread
	for i := range n {
		fd := l.events[i].Fd
		if fd == int32(l.wakefd) {
			if !l.takeIncoming() {
				return false
			}
			continue
		}
		if c := l.conns[fd]; c != nil {
			l.serve(c, l.events[i].Events)
		} else if fn := l.watched[fd]; fn != nil {
			l.runWatched(fn, l.events[i].Events)
		}
	}
	for i, c := range unread {
		unread[i] = nil
		c.unreadQueued = false
		if !c.moreInput || !c.inLoop { // emptied since (by a new event), or gone
			continue
		}
		if c.parked {
			c.inputSeen = true // read once its replies are computed
			continue
		}
		l.serve(c, unix.EPOLLIN)
	}
	l.flushParked()
	l.takePushedLocal()
	l.writeQueued()
	return true
}

// takeIncoming registers the connections handed to the loop. It reports false when the loop
// must end (after closing everything).
func (l *loop) takeIncoming() bool {
	_, _ = unix.Read(l.wakefd, l.wakeb[:])
	l.mu.Lock()
	list, ready, tasks, pushed, stopped := l.incoming, l.readyList, l.tasks, l.pushed, l.stopping
	l.incoming, l.readyList, l.tasks, l.pushed, l.woken = nil, l.spareReady[:0], l.spareTasks[:0], l.sparePush[:0], false
	l.spareReady, l.spareTasks, l.sparePush = ready, tasks, pushed
	l.mu.Unlock()
	for i, fn := range tasks {
		tasks[i] = nil
		l.runTask(fn)
	}
	for i, c := range pushed {
		pushed[i] = nil
		if l.idleHere(c) {
			l.write(c)
		}
	}
	for i, c := range ready {
		ready[i] = nil
		l.resume(c)
	}
	for _, c := range list {
		c.fdio.sk.enterLoop()
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: c.fdio.fd}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(c.fdio.fd), &ev); err != nil {
			l.s.log.Warn("cannot register client with the event loop", "client", c.ID, "err", err)
			l.s.closeConn(c)
			continue
		}
		l.conns[c.fdio.fd] = c
		l.held.Store(int64(len(l.conns)))
		c.inLoop = true
		// Input waiting in the socket is reported by epoll when the descriptor is added, but
		// input already buffered is not: run it now.
		if c.rd.Buffered() {
			l.process(c)
		} else if c.pushing.Load() { // queued while it moved here (wakeForPush found it away)
			l.write(c)
		}
	}
	if stopped {
		l.writeQueued() // the replies of commands already run still go out
		l.closeAll()
		return false
	}
	return true
}

// handOff moves c to goroutine mode: serveConn runs args (or answers perr) first, with whatever
// replies c has buffered written before theirs.
func (l *loop) handOff(c *Conn, args [][]byte, perr error) {
	l.unregister(c)
	if err := c.fdio.sk.leaveLoop(); err != nil {
		l.s.log.Warn("cannot move a client off the event loop; closing it", "client", c.ID, "err", err)
		l.s.closeConn(c)
		return
	}
	go l.s.serveConn(c, args, perr)
}

// unregister removes c from the loop; the caller now owns it.
func (l *loop) unregister(c *Conn) {
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(c.fdio.fd), nil)
	delete(l.conns, c.fdio.fd)
	l.held.Store(int64(len(l.conns)))
	c.inLoop = false
	// Its new owner starts the work behind its waiting replies itself (Settle flushes them): the
	// end of the round must not read c.waiting while a goroutine serves c.
	l.toFlush = slices.DeleteFunc(l.toFlush, func(q *Conn) bool { return q == c })
	if c.writeQueued { // its new owner writes what it has buffered
		c.writeQueued = false
		for i, q := range l.toWrite {
			if q == c {
				l.toWrite = append(l.toWrite[:i], l.toWrite[i+1:]...)
				break
			}
		}
	}
}

// close closes a registered connection.
func (l *loop) close(c *Conn) {
	if !c.inLoop {
		return
	}
	l.unregister(c)
	l.s.closeConn(c)
}

// closeAll closes every connection the loop holds or was handed.
func (l *loop) closeAll() {
	for _, c := range l.conns {
		l.close(c)
	}
	l.mu.Lock()
	list := l.incoming
	l.incoming, l.stopped = nil, true
	l.mu.Unlock()
	for _, c := range list {
		l.s.closeConn(c)
	}
}

// closeIdle closes the connections idle for longer than the idle timeout, as Redis's client
// cron does.
func (l *loop) closeIdle(idle time.Duration) {
	cutoff := time.Now().Add(-idle).UnixMilli()
	for _, c := range l.conns {
		// A parked connection waits for its replies: like Redis's blocked clients, it is not idle.
		if !c.peer && !c.parked && c.lastActive.Load() < cutoff {
			l.close(c)
		}
	}
}

// Loop is the event loop serving a connection, as code that runs on it sees it: a store whose
// network calls the loop itself drives (its replies read when the loop finds their socket
// readable, with no goroutine in between) registers its descriptors here. Watch and Unwatch must
// be called on the loop's goroutine: from a command the loop runs (see Conn.Loop), from a watch
// function or from a posted task. Post may be called from any goroutine.
type Loop struct{ l *loop }

// Loop returns the event loop serving c when c is served by one and the caller runs on it (a
// command the loop runs in-line); otherwise nil.
func (c *Conn) Loop() *Loop {
	if c.loop == nil || !c.inLoop {
		return nil
	}
	return c.loop.handle
}

// Watch makes the loop call fn, on its goroutine, with the epoll events (EPOLLIN, EPOLLOUT,
// EPOLLERR, EPOLLHUP, EPOLLRDHUP) whenever fd becomes readable or writable. Notification is
// edge-triggered: fn must read until EAGAIN, and write until EAGAIN or done. fd must be
// non-blocking, and unwatched before it is closed.
func (lp *Loop) Watch(fd int, fn func(events uint32)) error {
	l := lp.l
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	l.watched[int32(fd)] = fn
	return nil
}

// Unwatch stops watching fd.
func (lp *Loop) Unwatch(fd int) {
	l := lp.l
	if _, ok := l.watched[int32(fd)]; ok {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
		delete(l.watched, int32(fd))
	}
}

// Post runs fn on the loop's goroutine soon, from any goroutine. It reports false, and fn does
// not run, when the loop has stopped; a task posted before the loop stops runs even so.
func (lp *Loop) Post(fn func()) bool {
	l := lp.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.tasks = append(l.tasks, fn)
	l.wakeLocked()
	return true
}

// wakeForPush has the loop write c's queued pushes (Conn.Push) if c is idle on it. A
// connection that is busy, parked or served by a goroutine takes them after its next reply.
// It allocates nothing: a subscriber may be pushed a message per publish.
func (l *loop) wakeForPush(c *Conn) {
	l.mu.Lock()
	if !l.stopped {
		l.pushed = append(l.pushed, c)
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// idleHere reports whether c is served by this loop and waits for nothing, so that its queued
// pushes can be written now. A connection that is busy, parked or served by a goroutine takes
// them after its next reply.
func (l *loop) idleHere(c *Conn) bool {
	return c.inLoop && !c.parked && len(c.waiting) == 0 && l.conns[c.fdio.fd] == c
}

// serves reports whether lp, which may be nil, is the loop c is registered with.
func (lp *Loop) serves(c *Conn) bool { return lp != nil && lp.l == c.loop }

// pushedHere notes, on the loop's goroutine, that c (one of its connections) has pushes queued:
// the end of the poll round writes them with the round's replies (takePushedLocal).
func (l *loop) pushedHere(c *Conn) { l.pushedLocal = append(l.pushedLocal, c) }

// takePushedLocal queues the writes of the connections the round's own commands pushed to.
func (l *loop) takePushedLocal() {
	for i, c := range l.pushedLocal {
		l.pushedLocal[i] = nil
		if l.idleHere(c) {
			c.takePushes()
			l.queueWrite(c)
		}
	}
	l.pushedLocal = l.pushedLocal[:0]
}

// runWatched and runTask run code given to the loop; a panic there is logged and costs the loop
// nothing more.
func (l *loop) runWatched(fn func(uint32), events uint32) {
	func() {
		defer l.recoverTask()
		fn(events)
	}()
	l.resumeLocal()
}

func (l *loop) runTask(fn func()) {
	func() {
		defer l.recoverTask()
		fn()
	}()
	l.resumeLocal()
}

func (l *loop) recoverTask() {
	if p := recover(); p != nil {
		l.s.log.Error("panic in a task of the event loop", "panic", p)
	}
}

// startLoops creates n event loops and starts their goroutines. The accept loop, which calls
// it, reads loopList without a lock; other goroutines take mu.
//
// The loops block in epoll_pwait (runBlocking) when, with those of every other server in the
// process, they leave the Go runtime at least one processor for everything else; otherwise they
// park in the scheduler.
func (s *Server) startLoops(n int) error {
	blocking := reserveBlocking(n)
	list := make([]*loop, 0, n)
	for range n {
		l, err := newLoop(s, blocking)
		if err != nil {
			for _, l := range list {
				l.closeFDs()
			}
			if blocking {
				blockingLoops.Add(-int64(n))
			}
			return err
		}
		list = append(list, l)
	}
	s.mu.Lock()
	s.loopList = list
	s.mu.Unlock()
	for _, l := range list {
		s.loops.Add(1)
		go l.run()
	}
	return nil
}

// blockingLoops is how many blocking event loops run in the process: each holds a processor.
var blockingLoops atomic.Int64

// reserveBlocking reserves n blocking loops if they and those already running leave at least
// one of the runtime's processors free, and reports whether it did.
func reserveBlocking(n int) bool {
	for {
		cur := blockingLoops.Load()
		if cur+int64(n) >= int64(runtime.GOMAXPROCS(0)) {
			return false
		}
		if blockingLoops.CompareAndSwap(cur, cur+int64(n)) {
			return true
		}
	}
}

// loopHeld is how many connections the event loops hold right now.
func (s *Server) loopHeld() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.loopList {
		n += int(l.held.Load())
	}
	return n
}
