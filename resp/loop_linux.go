//go:build linux

package resp

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loopsSupported reports whether this platform has event loops (epoll).
const loopsSupported = true

// loop is one epoll event loop. The connections registered with it are in "loop mode": the loop
// reads them when the kernel says they are readable, runs their commands in-line and writes the
// replies, so that a request costs one read and one write system call and no goroutine switch,
// as in Redis. A command that may wait (the Inliner declines it), a reply that does not fit in
// the socket, a protocol error or a panic hands the connection to a goroutine of its own
// (serveConn), which gives it back once it is idle after a command the loop could have run.
//
// The loop goroutine alone touches a registered connection. Other goroutines reach it through
// incoming (connections to register) and stop, both behind mu, and wake it through an eventfd.
type loop struct {
	s       *Server
	epfd    int
	file    *os.File        // epfd, registered with the runtime's poller
	raw     syscall.RawConn // file's, to park until epfd is readable
	pollFn  func(uintptr) bool
	nready  int   // events the last poll returned
	pollErr error // error of the last poll
	wakefd  int
	events  []unix.EpollEvent
	conns   map[int32]*Conn // registered connections by descriptor; the loop goroutine only
	held    atomic.Int64    // len(conns), for other goroutines (tests)
	wakeb   [8]byte
	toFlush []*Conn // parked in this poll round, their Later replies not yet flushed

	mu         sync.Mutex
	incoming   []*Conn // handed to the loop, not yet registered
	readyList  []*Conn // parked connections whose replies are ready
	spareReady []*Conn // the other ready list, swapped with readyList by the loop
	woken      bool    // wakefd has been written since the loop last drained it
	stopping   bool    // Shutdown asked the loop to end; it registers nothing any more
	stopped    bool    // the loop has ended (or is closing everything): wakefd is closed
}

// newLoop creates the epoll instance and the eventfd that wakes it.
func newLoop(s *Server) (*loop, error) {
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
	if err == nil {
		err = unix.SetNonblock(epfd, true) // so that os.NewFile registers it with the runtime poller
	}
	if err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		return nil, err
	}
	file := os.NewFile(uintptr(epfd), "epoll")
	raw, err := file.SyscallConn()
	if err != nil {
		_ = file.Close()
		_ = unix.Close(wakefd)
		return nil, err
	}
	l := &loop{s: s, epfd: epfd, file: file, raw: raw, wakefd: wakefd,
		events: make([]unix.EpollEvent, 256), conns: make(map[int32]*Conn)}
	l.pollFn = l.poll
	return l, nil
}

// attach prepares c for loop mode: it needs the socket's descriptor, which only a TCP (or Unix)
// socket exposes. It reports false when c must stay in goroutine mode.
func (l *loop) attach(c *Conn) bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	fd := int32(-1)
	if raw.Control(func(d uintptr) { fd = int32(d) }) != nil || fd < 0 {
		return false
	}
	c.loop = l
	c.fdio = &fdIO{raw: raw, fd: fd}
	c.fdio.readFn = c.fdio.read
	c.fdio.writeFn = c.fdio.write
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
// The loop never blocks in a system call: it polls its epoll instance without waiting, and when
// nothing is ready it parks in the Go scheduler until the runtime's own poller reports the epoll
// descriptor readable. A blocking epoll_wait would let the runtime hand the loop's P to another
// thread each time and wake its monitor thread on return: three times Redis's context switches.
func (l *loop) run() {
	defer l.s.loops.Done()
	defer func() {
		_ = l.file.Close() // the epoll descriptor
		l.mu.Lock()        // wakefd is written under mu, and only while not stopped
		l.stopped = true
		_ = unix.Close(l.wakefd)
		l.mu.Unlock()
	}()
	idle := l.s.cfg.IdleTimeout
	var tick time.Duration
	var nextSweep time.Time
	if idle > 0 {
		tick = min(max(idle/10, 10*time.Millisecond), time.Second)
		nextSweep = time.Now().Add(tick)
		_ = l.file.SetReadDeadline(nextSweep)
	}
	for {
		err := l.raw.Read(l.pollFn)
		if tick > 0 && (err != nil || time.Now().After(nextSweep)) {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = nil
			}
			l.closeIdle(idle)
			nextSweep = time.Now().Add(tick)
			_ = l.file.SetReadDeadline(nextSweep)
		}
		if err == nil {
			err = l.pollErr
		}
		if err != nil {
			l.s.log.Error("event loop failed; its clients are closed", "err", err)
			l.closeAll()
			return
		}
		for i := range l.nready {
			fd := l.events[i].Fd
			if fd == int32(l.wakefd) {
				if !l.takeIncoming() {
					return
				}
				continue
			}
			if c := l.conns[fd]; c != nil {
				l.serve(c, l.events[i].Events)
			}
		}
		l.flushParked()
	}
}

// poll is the loop's RawConn read function: it collects ready events without waiting and tells
// the runtime to park the loop when there are none.
func (l *loop) poll(uintptr) bool {
	n, err := pollNow(l.epfd, l.events)
	if err == unix.EINTR {
		n, err = 0, nil
	}
	l.nready, l.pollErr = n, err
	return n > 0 || err != nil
}

// takeIncoming registers the connections handed to the loop. It reports false when the loop
// must end (after closing everything).
func (l *loop) takeIncoming() bool {
	_, _ = unix.Read(l.wakefd, l.wakeb[:])
	l.mu.Lock()
	list, ready, stopped := l.incoming, l.readyList, l.stopping
	l.incoming, l.readyList, l.woken = nil, l.spareReady[:0], false
	l.spareReady = ready
	l.mu.Unlock()
	for i, c := range ready {
		ready[i] = nil
		l.resume(c)
	}
	for _, c := range list {
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
		}
	}
	if stopped {
		l.closeAll()
		return false
	}
	return true
}

// serve handles an event on c. Descriptors are registered edge-triggered: a read that fills
// the room it was given may have left more in the socket, so serve reads again after running
// what it got; a shorter read emptied the socket. A parked connection is only marked: its input
// is read once its pending replies are written (reading earlier could move the buffer that
// their keys alias).
func (l *loop) serve(c *Conn, events uint32) {
	if c.parked {
		if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			l.close(c)
			return
		}
		c.inputSeen = true
		return
	}
	for {
		err := c.rd.FillFrom(c.fdio)
		if err != nil {
			if err != unix.EAGAIN {
				l.close(c)
			}
			return
		}
		c.lastActive.Store(time.Now().UnixMilli())
		more := c.rd.filled
		l.process(c)
		if !more || !c.inLoop {
			return
		}
		if c.parked {
			c.inputSeen = true
			return
		}
	}
}

// process runs the buffered commands of c and writes their replies. It parks c when replies
// are still being computed (see park).
func (l *loop) process(c *Conn) {
	defer func() {
		if p := recover(); p != nil { // a handler bug costs the client its connection only
			l.s.log.Error("panic serving connection", "client", c.ID, "panic", p)
			l.close(c)
		}
	}()
	for {
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
		if reply.Later != nil || len(c.waiting) > 0 {
			c.waiting = append(c.waiting, reply) // not c.later: its Settle would block the loop
			if len(c.waiting) >= maxLater {
				l.park(c)
				return
			}
		} else {
			c.out = Append(c.out, reply, c.proto)
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
	l.write(c)
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
	}
	c.parked = true
	c.unparked.Store(1) // held until every Notify is registered
	for _, r := range c.waiting {
		if r.Later == nil {
			continue
		}
		c.unparked.Add(1)
		if !r.Later.(Notifier).Notify(c.notifyFn) {
			c.unparked.Add(-1) // ready already
		}
	}
	if c.unparked.Add(-1) == 0 { // everything was ready
		l.resume(c)
	}
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

// resume writes the replies of a connection that was parked and goes on with its input.
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
	if !l.write(c) {
		return
	}
	if c.quit {
		l.close(c)
		return
	}
	if c.rd.Buffered() {
		l.process(c)
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
	for len(c.out) > 0 {
		n, err := c.fdio.Write(c.out)
		if n > 0 {
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

// handOff moves c to goroutine mode: serveConn runs args (or answers perr) first, with whatever
// replies c has buffered written before theirs.
func (l *loop) handOff(c *Conn, args [][]byte, perr error) {
	l.unregister(c)
	go l.s.serveConn(c, args, perr)
}

// unregister removes c from the loop; the caller now owns it.
func (l *loop) unregister(c *Conn) {
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(c.fdio.fd), nil)
	delete(l.conns, c.fdio.fd)
	l.held.Store(int64(len(l.conns)))
	c.inLoop = false
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
		if !c.noIdle && !c.parked && c.lastActive.Load() < cutoff {
			l.close(c)
		}
	}
}

// fdIO reads and writes a socket without blocking, through its RawConn so that the descriptor
// cannot be closed underneath. Its functions are built once per connection, so that a read or a
// write allocates nothing.
type fdIO struct {
	raw     syscall.RawConn
	fd      int32
	p       []byte
	n       int
	err     error
	readFn  func(uintptr) bool
	writeFn func(uintptr) bool
}

// Read reads once; it returns unix.EAGAIN when nothing is waiting and io.EOF when the peer closed.
func (f *fdIO) Read(p []byte) (int, error) {
	f.p = p
	err := f.raw.Read(f.readFn)
	f.p = nil
	if err != nil {
		return 0, err
	}
	return f.n, f.err
}

func (f *fdIO) read(fd uintptr) bool {
	n, err := rawRead(int(fd), f.p)
	switch {
	case n > 0:
		f.n, f.err = n, nil
	case err == nil:
		f.n, f.err = 0, io.EOF
	default:
		f.n, f.err = 0, err
	}
	return true // never wait: the loop is told when the socket is readable
}

// Write writes once; it returns unix.EAGAIN when the socket buffer is full.
func (f *fdIO) Write(p []byte) (int, error) {
	f.p = p
	err := f.raw.Write(f.writeFn)
	f.p = nil
	if err != nil {
		return 0, err
	}
	return f.n, f.err
}

func (f *fdIO) write(fd uintptr) bool {
	n, err := rawWrite(int(fd), f.p)
	if n < 0 {
		n = 0
	}
	f.n, f.err = n, err
	return true
}

// startLoops creates n event loops and starts their goroutines. The accept loop, which calls
// it, reads loopList without a lock; other goroutines take mu.
func (s *Server) startLoops(n int) error {
	list := make([]*loop, 0, n)
	for range n {
		l, err := newLoop(s)
		if err != nil {
			for _, l := range list {
				_ = l.file.Close()
				_ = unix.Close(l.wakefd)
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

// The system calls below never block: the sockets are non-blocking and the poll has a zero
// timeout. They are made without telling the scheduler (RawSyscall), which would otherwise
// hand the loop's P to another thread during each of them, costing more than the call itself.

func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// pollNow is epoll_wait with a zero timeout.
func pollNow(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
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
