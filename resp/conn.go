package resp

import (
	"context"
	"net"
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

	lastActive atomic.Int64           // unix ms of the last read, for CLIENT LIST idle=
	lastCmd    atomic.Pointer[string] // name of the last command, for CLIENT LIST cmd=

	// Session is the command layer's per-connection state; resp never looks inside it. Only the
	// connection's goroutine touches it.
	Session any

	mu         sync.Mutex // guards the fields below
	name       string
	libName    string
	libVer     string
	closeHooks []func()
}

// Context is cancelled when the connection closes or the server shuts down. Commands derive their
// deadlines from it.
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

// Proto returns the negotiated protocol version, 2 or 3.
func (c *Conn) Proto() int { return c.proto }

// SetProto switches the connection to RESP2 or RESP3 (HELLO); it applies from the next reply.
func (c *Conn) SetProto(v int) {
	c.proto = v
	c.protoShared.Store(int32(v))
}

// Quit makes the connection close once the current reply is written.
func (c *Conn) Quit() { c.quit = true }

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

// Info is a snapshot of the descriptive state of a connection.
type Info struct {
	ID                    int64
	Addr, LocalAddr       string
	Name, LibName, LibVer string
	LastCommand           string
	Age, Idle             time.Duration
	Proto                 int
}

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
		Age:   now.Sub(c.created),
		Idle:  now.Sub(time.UnixMilli(c.lastActive.Load())),
		Proto: int(c.protoShared.Load()),
	}
}

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
const maxLater = 1024

// later queues a reply behind Later replies still outstanding.
func (c *Conn) later(r Reply) {
	c.waiting = append(c.waiting, r)
	if len(c.waiting) >= maxLater {
		c.Settle()
	}
}

// Settle resolves the Later replies queued on the connection, in order, and buffers them for
// writing. A handler whose command must not overlap the pipelined commands before it (anything
// but a plain GET or SET) calls Settle first. It must be called on the connection's goroutine.
func (c *Conn) Settle() {
	if len(c.waiting) == 0 {
		return
	}
	for i, r := range c.waiting {
		if r.Later != nil {
			r = r.Later.Reply()
		}
		c.out = Append(c.out, r, c.proto)
		c.waiting[i] = Reply{}
	}
	c.waiting = c.waiting[:0]
}

// flush settles and writes the pending replies.
func (c *Conn) flush() error {
	c.Settle()
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	if cap(c.out) > 4*maxPendingOutput {
		c.out = nil // do not keep a buffer grown by one huge reply
	} else {
		c.out = c.out[:0]
	}
	return err
}
