package resp

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is one client connection. Fields without a lock are only touched by the connection's own
// goroutine (which runs its commands); the descriptive fields other connections read for
// CLIENT LIST are behind mu.
type Conn struct {
	// ID is unique per server and never reused, as CLIENT ID promises.
	ID          int64
	proto       int          // negotiated protocol version, 2 or 3; the connection's goroutine only
	protoShared atomic.Int32 // copy of proto for CLIENT LIST on other goroutines
	// Buffer sizes for CLIENT LIST and INFO on other goroutines, as of the connection's last
	// read (noteBuffers): unparsed input, the input buffer's size and its peak, the output
	// buffer's capacity.
	qbufLen, qbufSize, qbufPeak, outSize atomic.Int64

	server  *Server
	nc      net.Conn
	rd      *Reader
	out     []byte
	waiting []Reply // replies queued behind a Later one, in order (see Settle)
	ctx     context.Context
	cancel  context.CancelFunc
	created time.Time
	authed  bool
	quit    bool
	// peer: a cluster peer's pooled connection (SetPeer), exempt from the idle timeout and not
	// counted against MaxClients. overLimit: accepted beyond MaxClients, it may only become a
	// peer's (Config.AdmitOverLimit).
	peer, overLimit bool
	peerShared      atomic.Bool // copy of peer for other goroutines (IsPeer)
	// settling is set while Settle resolves the waiting replies.
	settling bool

	// Event loop serving (loop_linux.go). loop is the connection's loop (nil: goroutine mode
	// only), fdio its non-blocking socket access, inLoop whether the loop holds it right now.
	loop   *loop
	fdio   *fdIO
	inLoop bool
	// parked: the loop waits for the connection's Later replies (Notifier) before it runs more
	// of its commands; unparked counts the notifications still due plus one. inputSeen: the
	// socket became readable while parked. inputEnds: the client has shut its side down, so the
	// socket's input ends with what is in it now. notifyFn is the callback given to Notify;
	// notifyLocalFn the one given to a LoopNotifier, whose calls come on the loop's goroutine.
	parked, inputSeen, inputEnds bool
	// moreInput: c's last read on the loop filled the buffer, so more may wait in the socket;
	// unreadQueued: c is on its loop's unread list (once at most).
	moreInput, unreadQueued bool
	// writeQueued: the connection is on its loop's toWrite list (replies buffered in out,
	// written at the end of the poll round).
	writeQueued   bool
	unparked      atomic.Int32
	notifyFn      func()
	notifyLocalFn func()

	// Socket watching for Blocking. blocking and watching belong to the connection's goroutine:
	// blocking is set while Blocking runs, watching while a watcher goroutine exists whose result
	// has not been collected from wdone.
	blocking bool
	watching bool
	wdone    chan watchResult // buffered 1; the watcher's single result
	peerGone atomic.Bool      // the watcher saw the client go away
	hangup   bool             // close without writing (Hangup)
	// CLIENT REPLY (SetReplyMode, filter): replyOff mutes every reply, skip the current
	// command's, skipNext the next command's. muting is set when any is, so that a command's
	// path checks one flag.
	replyOff, skip, skipNext, muting bool
	wmu                              sync.Mutex // guards wstopping and wexited, shared with the watcher
	// wstopping: the blocking command is over, so the watcher's next successful read is the
	// connection's next read and ends it. wexited: the watcher has stopped reading. wread: bytes
	// it has read so far.
	wstopping, wexited bool
	wread              int

	lastActive atomic.Int64           // unix ms of the last read, for CLIENT LIST idle=
	lastCmd    atomic.Pointer[string] // name of the last command, for CLIENT LIST cmd=
	multi      atomic.Int32           // commands queued since MULTI plus one; 0 outside MULTI
	watchDirty atomic.Bool            // a key the client WATCHes has changed
	noEvict    atomic.Bool            // CLIENT NO-EVICT
	monitor    atomic.Bool            // MONITOR
	// netIn and netOut count the bytes read and written (INFO total_net_input_bytes…): each
	// touched only by the connection's own reads and writes, added up by Server.NetStats.
	netIn, netOut atomic.Uint64

	// Pushes (push.go): pushBuf holds the messages queued by other goroutines, behind pushMu;
	// pushing says it is not empty, idleRead that the connection's goroutine waits for input.
	// pushDropped: the queue overflowed.
	pushMu            sync.Mutex
	pushBuf           []byte
	pushDropped       bool
	pushing, idleRead atomic.Bool
	killed            atomic.Bool // Kill was called: a read's timeout is not a push's

	// Session is the command layer's per-connection state; resp never looks inside it. Only the
	// connection's goroutine touches it.
	Session any

	mu         sync.Mutex // guards the fields below
	name       string
	libName    string
	libVer     string
	closeHooks []func()
	trackFlags string // SetTracking
	redirect   int64
	subs       [3]int      // SetSubscriptions: channels, patterns and shard channels
	subscribed atomic.Bool // any of subs
}

// Context is cancelled when the connection closes or the server shuts down, and during Blocking as
// soon as the client goes away. Commands derive their deadlines from it.
func (c *Conn) Context() context.Context { return c.ctx }

// RemoteAddr is the client's address.
func (c *Conn) RemoteAddr() string { return c.nc.RemoteAddr().String() }

// LocalAddr is the server address the client connected to.
func (c *Conn) LocalAddr() string { return c.nc.LocalAddr().String() }

// Authenticated reports whether the connection may run commands that need authentication.
func (c *Conn) Authenticated() bool { return c.authed }

// SetAuthenticated records a successful AUTH and lifts the unauthenticated request limits.
func (c *Conn) SetAuthenticated() {
	c.authed = true
	c.rd.SetRequireAuth(false)
}

// ClearAuthenticated undoes SetAuthenticated (RESET on a server with a password): the connection
// needs AUTH again and is back under the unauthenticated request limits.
func (c *Conn) ClearAuthenticated() {
	c.authed = false
	c.rd.SetRequireAuth(true)
}

// Proto returns the negotiated protocol version, 2 or 3.
func (c *Conn) Proto() int { return c.proto }

// SetProto switches the connection to RESP2 or RESP3 (HELLO); it applies from the next reply.
func (c *Conn) SetProto(v int) {
	c.proto = v
	c.protoShared.Store(int32(v))
}

// Quit makes the connection close once the current reply is written.
func (c *Conn) Quit() { c.quit = true }

// Reply modes (CLIENT REPLY).
const (
	ReplyOn   = iota // every command's reply is written
	ReplyOff         // none is
	ReplySkip        // the next command's reply is not
)

// SetReplyMode sets which replies are written, as CLIENT REPLY ON|OFF|SKIP sets it: ON writes
// them all again, the current command's included; OFF writes none from the current command on;
// SKIP (ignored under OFF) leaves out the next command's. It must be called from a handler; a
// handler that answers nothing (OFF, SKIP) returns NoReply.
func (c *Conn) SetReplyMode(mode int) {
	switch mode {
	case ReplyOn:
		c.replyOff, c.skip = false, false
	case ReplyOff:
		c.replyOff = true
	case ReplySkip:
		c.skipNext = !c.replyOff
	}
	c.muting = c.replyOff || c.skip || c.skipNext
}

// ResetReplyMode ends CLIENT REPLY OFF and a SKIP still to come, as RESET does.
func (c *Conn) ResetReplyMode() {
	c.replyOff, c.skipNext = false, false
	c.muting = c.skip
}

// NoReply is a handler's reply when the command answers nothing: nothing is written.
var NoReply = Reply{Kind: KindNone}

// filter is what is written for a command's reply r while CLIENT REPLY mutes some: r, or
// nothing; a Later is still resolved in its turn. It is called once per command, after it ran,
// when muting is set, and moves SKIP on to the next command, as Redis's resetClient does.
func (c *Conn) filter(r Reply) Reply {
	mute := c.replyOff || c.skip
	c.skip, c.skipNext = c.skipNext, false
	c.muting = c.replyOff || c.skip
	switch {
	case !mute:
		return r
	case r.Later != nil:
		return Reply{Later: mutedLater{r.Later}}
	}
	return NoReply
}

// mutedLater is a Later whose reply is not written: it is resolved in its turn, so that the
// replies after it keep their order, and then written as nothing.
type mutedLater struct{ Later }

func (m mutedLater) Reply() Reply {
	m.Later.Reply()
	return Reply{Kind: KindNone}
}

// Notify implements Notifier when the muted Later does.
func (m mutedLater) Notify(fn func()) bool {
	if n, ok := m.Later.(Notifier); ok {
		return n.Notify(fn)
	}
	return false
}

// Flush implements Flusher when the muted Later does.
func (m mutedLater) Flush() {
	if f, ok := m.Later.(Flusher); ok {
		f.Flush()
	}
}

// Hangup makes the connection close once the command running now returns, without writing its
// reply or any reply still buffered (SHUTDOWN: the client sees the connection close, as when
// Redis exits). It must be called from the command's handler on the connection's goroutine.
func (c *Conn) Hangup() { c.hangup = true }

// Name returns the name set by CLIENT SETNAME or HELLO SETNAME.
func (c *Conn) Name() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.name
}

// SetName sets the connection name.
func (c *Conn) SetName(name string) {
	c.mu.Lock()
	c.name = name
	c.mu.Unlock()
}

// SetLib records CLIENT SETINFO LIB-NAME / LIB-VER; an empty argument leaves that field alone.
func (c *Conn) SetLib(name, ver string) {
	c.mu.Lock()
	if name != "" {
		c.libName = name
	}
	if ver != "" {
		c.libVer = ver
	}
	c.mu.Unlock()
}

// SetLastCommand records the command name CLIENT LIST shows as cmd=. It takes a pointer to a
// long-lived string (the command table's name) so that recording costs no allocation.
func (c *Conn) SetLastCommand(name *string) { c.lastCmd.Store(name) }

// SetMulti records, for CLIENT LIST, how many commands the client has queued since MULTI, or
// -1 when it is not inside MULTI.
func (c *Conn) SetMulti(queued int) { c.multi.Store(int32(queued + 1)) }

// SetWatchDirty records, for CLIENT LIST's d flag, whether a key the client watches has changed.
// Any goroutine may call it.
func (c *Conn) SetWatchDirty(dirty bool) { c.watchDirty.Store(dirty) }

// SetNoEvict records CLIENT NO-EVICT for CLIENT LIST's "e" flag (Vela evicts no client).
func (c *Conn) SetNoEvict(on bool) { c.noEvict.Store(on) }

// SetMonitor records, for CLIENT LIST's O flag, whether the client is in MONITOR mode.
func (c *Conn) SetMonitor(on bool) { c.monitor.Store(on) }

// Info is a snapshot of the descriptive state of a connection.
type Info struct {
	ID                    int64
	Addr, LocalAddr       string
	Name, LibName, LibVer string
	LastCommand           string
	Age, Idle             time.Duration
	Proto                 int
	// Multi is the number of commands queued since MULTI, -1 outside MULTI.
	Multi int
	// WatchDirty: a key the client watches has changed since it was watched.
	WatchDirty bool
	// NoEvict: CLIENT NO-EVICT ON.
	NoEvict bool
	// Monitor: the client has sent MONITOR and receives the commands the server runs.
	Monitor bool
	// TrackingFlags are CLIENT LIST's letters for client tracking ("t", "tR", "tB"…), and
	// Redirect the client its invalidations go to (-1: not tracking), as SetTracking set them.
	TrackingFlags string
	Redirect      int64
	// Sub, PSub and SSub are the numbers of channels, patterns and shard channels the client
	// is subscribed to, as SetSubscriptions set them.
	Sub, PSub, SSub int
	// QueryBuf is the input read and not yet parsed, QueryBufSize the input buffer's size and
	// QueryBufPeak the largest it has been, OutputBufSize the output buffer's capacity, in
	// bytes, as of the connection's last read.
	QueryBuf, QueryBufSize, QueryBufPeak, OutputBufSize int64
}

// noteBuffers publishes the connection's buffer sizes for Info. The goroutine or loop serving
// the connection calls it after each read.
func (c *Conn) noteBuffers() {
	n, size := int64(c.rd.w-c.rd.r), int64(len(c.rd.buf))
	if c.qbufLen.Load() != n {
		c.qbufLen.Store(n)
	}
	if c.qbufSize.Load() != size {
		c.qbufSize.Store(size)
		if size > c.qbufPeak.Load() {
			c.qbufPeak.Store(size)
		}
	}
	if o := int64(cap(c.out)); c.outSize.Load() != o {
		c.outSize.Store(o)
	}
}

// BufferSizes returns the sizes of the connection's input and output buffers, in bytes, as of
// its last read. It is safe to call from any goroutine.
func (c *Conn) BufferSizes() (in, out int64) { return c.qbufSize.Load(), c.outSize.Load() }

// Info returns a snapshot for CLIENT LIST. It is safe to call from any goroutine.
func (c *Conn) Info() Info {
	now := time.Now()
	last := "NULL"
	if p := c.lastCmd.Load(); p != nil {
		last = *p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return Info{
		ID: c.ID, Addr: c.RemoteAddr(), LocalAddr: c.LocalAddr(),
		Name: c.name, LibName: c.libName, LibVer: c.libVer, LastCommand: last,
		Age:           now.Sub(c.created),
		Idle:          now.Sub(time.UnixMilli(c.lastActive.Load())),
		Proto:         int(c.protoShared.Load()),
		Multi:         int(c.multi.Load()) - 1,
		WatchDirty:    c.watchDirty.Load(),
		NoEvict:       c.noEvict.Load(),
		Monitor:       c.monitor.Load(),
		TrackingFlags: c.trackFlags, Redirect: c.redirect,
		Sub: c.subs[0], PSub: c.subs[1], SSub: c.subs[2],
		QueryBuf: c.qbufLen.Load(), QueryBufSize: c.qbufSize.Load(), QueryBufPeak: c.qbufPeak.Load(),
		OutputBufSize: c.outSize.Load(),
	}
}

// SetTracking records, for CLIENT LIST, the connection's client-tracking letters and the
// client its invalidations go to (-1: not tracking). Safe from any goroutine.
func (c *Conn) SetTracking(flags string, redirect int64) {
	c.mu.Lock()
	c.trackFlags, c.redirect = flags, redirect
	c.mu.Unlock()
}

// SetSubscriptions records, for CLIENT LIST, how many channels, patterns and shard channels
// the connection is subscribed to. Safe from any goroutine.
func (c *Conn) SetSubscriptions(channels, patterns, shards int) {
	c.mu.Lock()
	c.subs = [3]int{channels, patterns, shards}
	c.mu.Unlock()
	c.subscribed.Store(channels+patterns+shards > 0)
}

// Subscribed reports whether the connection has a Pub/Sub subscription (SetSubscriptions):
// a RESP2 connection then takes messages between replies. Safe from any goroutine.
func (c *Conn) Subscribed() bool { return c.subscribed.Load() }

// SpeaksRESP3 reports whether the connection has switched to RESP3 (HELLO 3), where pushes
// reach it. Safe from any goroutine.
func (c *Conn) SpeaksRESP3() bool { return c.protoShared.Load() >= 3 }

// OnClose registers fn to run once the connection has closed (for example to release a lease the
// client held). Hooks run on the connection's goroutine after the socket is closed.
func (c *Conn) OnClose(fn func()) {
	c.mu.Lock()
	c.closeHooks = append(c.closeHooks, fn)
	c.mu.Unlock()
}

// Server returns the server the connection belongs to.
func (c *Conn) Server() *Server { return c.server }

func (c *Conn) runCloseHooks() {
	c.mu.Lock()
	hooks := c.closeHooks
	c.closeHooks = nil
	c.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
}

// maxLater is how many replies may wait behind a Later reply before the connection settles them.
// It bounds what a client that does not read its replies can make the server hold: a few batches
// of maxLater replies (1024 let 300 pipelined GETs of a 1 MiB value forwarded to a peer hold 1.6 GB;
// 128 holds 0.7 GB whatever the number sent), while deep pipelines still overlap 128 requests.
const maxLater = 128

// Pending reports whether replies of commands already run are still being computed (Later). A
// command that must not overtake them waits for them (Settle), which an event loop must not do.
func (c *Conn) Pending() bool { return len(c.waiting) > 0 }

// later queues a reply behind Later replies still outstanding.
func (c *Conn) later(r Reply) {
	c.waiting = append(c.waiting, r)
	if len(c.waiting) >= maxLater {
		c.Settle()
	}
}

// SetPeer marks the connection as a cluster peer's: it is exempt from the server's idle
// timeout (peers keep their pooled connections open however long they are idle) and does not
// count against MaxClients, as Redis Cluster's bus does not.
func (c *Conn) SetPeer() {
	if !c.peer {
		c.peer, c.overLimit = true, false
		c.peerShared.Store(true)
		c.server.count.Add(-1)
	}
	if c.server.cfg.IdleTimeout > 0 {
		_ = c.nc.SetReadDeadline(time.Time{}) // the one set while it waited for this command
		if c.server.closing.Load() {          // Shutdown may have set its wake-up deadline just before
			_ = c.nc.SetReadDeadline(time.Now())
		}
	}
}

// IsPeer reports whether the connection is a cluster peer's (SetPeer). It is safe to call from
// any goroutine.
func (c *Conn) IsPeer() bool { return c.peerShared.Load() }

// Kill ends the connection from any goroutine (CLIENT KILL). It shuts the socket's reading side,
// so whoever serves the connection, its event loop or its goroutine, reads the end of the stream
// as when a client hangs up: it writes the replies it has and closes the connection. The
// descriptor itself stays open until then, so it cannot be reused under the one serving it.
func (c *Conn) Kill() {
	c.killed.Store(true)
	if cr, ok := c.nc.(interface{ CloseRead() error }); ok && cr.CloseRead() == nil {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now()) // a connection without CloseRead: end its wait for input
}

// Settle resolves the Later replies queued on the connection, in order, and buffers them for
// writing. A handler whose command must not overlap the pipelined commands before it (anything
// but a plain GET or SET) calls Settle first. It must be called on the connection's goroutine.
func (c *Conn) Settle() {
	if len(c.waiting) == 0 || c.settling {
		return // nothing waits, or a Later being resolved runs a command that settles
	}
	// Start every deferred request before waiting for the first, so that they overlap.
	for _, r := range c.waiting {
		if f, ok := r.Later.(Flusher); ok {
			f.Flush()
		}
	}
	c.appendWaiting()
}

// appendWaiting appends the waiting replies to out, in order, waiting for each Later one. The
// event loop calls it once they are all ready; flushing them then would be wasted (their
// requests left long ago) and harmful (it would send the requests other connections have just
// queued on the same upstream connection, which the end of the poll round sends together).
func (c *Conn) appendWaiting() {
	c.settling = true
	defer func() { c.settling = false }()
	for i, r := range c.waiting {
		if r.Later != nil {
			r = r.Later.Reply()
		}
		c.out = Append(c.out, r, c.proto)
		c.waiting[i] = Reply{}
	}
	c.waiting = c.waiting[:0]
	// Pushes only after every reply: one queued meanwhile may follow any of their commands (an
	// invalidation of a key the last one read).
	c.takePushes()
}

// Bounds of lingerClose.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 4 << 20
)

// lingerClose is used after a protocol error reply: closing a socket whose input has not all
// been read makes the kernel send a reset, which can destroy the error reply before the client
// reads it. So the connection shuts down its sending side and discards what the client still
// sends, for a bounded time and amount, before it is closed.
func (c *Conn) lingerClose() {
	tc, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || c.watching || tc.CloseWrite() != nil {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	scratch := c.rd.buf // the request is abandoned: its buffer is free
	for read := 0; read < lingerBytes; {
		n, err := c.nc.Read(scratch)
		read += n
		if err != nil {
			return
		}
	}
}

// flush settles and writes the pending replies.
func (c *Conn) flush() error {
	c.Settle()
	c.takePushes()
	if len(c.out) == 0 {
		return nil
	}
	err := c.writeOut()
	if cap(c.out) > 4*maxPendingOutput {
		c.out = nil // do not keep a buffer grown by one huge reply
	} else {
		c.out = c.out[:0]
	}
	return err
}

// writeOut writes out, blocking. With an idle timeout, a client that takes none of it for that
// long is cut off, as Redis counts a successful write as the client's last interaction: the
// deadline is renewed for every chunk of writeChunk bytes the client takes (none during
// Shutdown, which sets its own).
func (c *Conn) writeOut() error {
	timeout := c.server.cfg.IdleTimeout
	if timeout <= 0 || c.peer {
		n, err := c.nc.Write(c.out)
		c.netOut.Add(uint64(n))
		return err
	}
	for p := c.out; len(p) > 0; {
		n := min(len(p), writeChunk)
		if !c.server.closing.Load() {
			_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
		}
		w, err := c.nc.Write(p[:n])
		c.netOut.Add(uint64(w))
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// writeChunk is the most writeOut writes under one deadline.
const writeChunk = 256 << 10

// Blocking runs fn, a wait inside a command handler (FETCHLOCK waiting for a fill), while a
// goroutine watches the socket, so that a client that disconnects is noticed at once rather than
// when the wait ends: the watcher cancels Context, which fn must honour, and the connection is
// closed once the handler returns. It must be called from the connection's goroutine, inside
// ServeRESP. Nested calls just run fn.
//
// The watcher reads into the free space at the end of the reader's buffer, never where the
// current command's arguments live, so they stay valid; bytes it reads (commands pipelined
// behind the blocking one) are executed afterwards, in order. It is not stopped when fn returns:
// its pending read simply becomes the connection's next read, collected before the connection
// reads again, so that ending a wait costs no extra system call or goroutine switch. When the
// buffer has no free space, or it fills up during the wait, the socket is no longer watched and
// a disconnect is noticed when the wait ends. The idle timeout does not apply while fn runs, as
// Redis does not apply it to blocked clients.
func (c *Conn) Blocking(fn func()) {
	if c.blocking || c.inLoop || !c.startWatch() { // an Inliner never runs a wait on a loop
		fn()
		return
	}
	c.blocking = true
	defer func() {
		c.blocking = false
		c.wmu.Lock()
		c.wstopping = true
		exited, read := c.wexited, c.wread
		c.wmu.Unlock()
		switch {
		case exited:
			_ = c.collectWatch() // its result is waiting: take in the bytes now
		case read > 0:
			// Commands were pipelined during the wait: they must be seen now, so stop the
			// watcher instead of letting its read carry over.
			_ = c.nc.SetReadDeadline(aLongTimeAgo)
			_ = c.collectWatch()
			if c.server.closing.Load() {
				_ = c.nc.SetReadDeadline(time.Now()) // keep Shutdown's wake-up
			} else {
				_ = c.nc.SetReadDeadline(time.Time{}) // serveConn sets the idle deadline before reading
			}
		}
	}()
	fn()
}

// aLongTimeAgo is a read deadline in the past: it makes a blocked Read return at once.
var aLongTimeAgo = time.Unix(1, 0)

// watchResult is what the watcher read before it stopped, and why it stopped (nil: it was asked
// to, or the buffer is full).
type watchResult struct {
	n   int
	err error
}

// startWatch makes sure a watcher is reading the socket for a wait. It reports false when none
// can: no free buffer space, the server is shutting down, or the client is gone already.
func (c *Conn) startWatch() bool {
	if c.server.closing.Load() || c.peerGone.Load() {
		return false
	}
	if c.watching {
		c.wmu.Lock()
		if !c.wexited { // still reading: keep it for this wait too
			c.wstopping = false
			c.wmu.Unlock()
			return true
		}
		c.wmu.Unlock()
		if c.collectWatch() != nil {
			return false
		}
	}
	spare := c.rd.buf[c.rd.w:]
	if len(spare) == 0 {
		return false
	}
	if c.server.cfg.IdleTimeout > 0 {
		if err := c.nc.SetReadDeadline(time.Time{}); err != nil {
			return false
		}
		if c.server.closing.Load() { // Shutdown may have set its wake-up deadline just before ours
			_ = c.nc.SetReadDeadline(time.Now())
			return false
		}
	}
	if c.wdone == nil {
		c.wdone = make(chan watchResult, 1)
	}
	c.wstopping, c.wexited, c.wread = false, false, 0 // no watcher runs now
	c.watching = true
	go c.watch(spare)
	return true
}

// collectWatch waits for the watcher to stop and takes in what it read. The connection's
// goroutine calls it before reading again and before closing.
func (c *Conn) collectWatch() error {
	r := <-c.wdone
	c.watching = false
	c.rd.w += r.n
	return r.err
}

// watch reads into buf until it is full, the client goes away (then it cancels the connection's
// context), a deadline passes (idle timeout, Shutdown), or a read succeeds after the blocking
// command is over.
func (c *Conn) watch(buf []byte) {
	n := 0
	var err error
	for n < len(buf) {
		var k int
		k, err = c.nc.Read(buf[n:])
		n += k
		if err != nil {
			break
		}
		c.wmu.Lock()
		c.wread = n
		stop := c.wstopping
		c.wmu.Unlock()
		if stop {
			break
		}
	}
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.peerGone.Store(true)
		c.cancel()
	}
	c.wmu.Lock()
	c.wexited = true
	c.wmu.Unlock()
	c.wdone <- watchResult{n, err}
}
