// Package resp is Vela's wire layer: it accepts connections, parses RESP2/RESP3 requests with
// Redis's limits, hands each command to a Handler and writes the replies, flushing once per
// pipelined batch. It knows nothing about commands or stores.
package resp

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Handler executes commands. ServeRESP is called from the connection's own goroutine, one
// command at a time per connection and concurrently across connections; args alias the read
// buffer and are valid only until ServeRESP returns, so a handler that keeps an argument must
// copy it.
type Handler interface {
	ServeRESP(c *Conn, args [][]byte) Reply
}

// Inliner is implemented by a Handler whose commands can run on an event loop (Config.EventLoops).
// TryServeRESP runs the command and returns its reply, with ok true, when the command completes
// without waiting: no I/O, no Blocking, no Later reply, nothing slower than the store's own
// locks. Otherwise it does nothing at all and returns ok false, and the command runs through
// ServeRESP on a goroutine of the connection's own, which may wait as long as it needs.
type Inliner interface {
	TryServeRESP(c *Conn, args [][]byte) (reply Reply, ok bool)
}

// Prefetcher warms the CPU caches for a batch of commands before they run (Config.Prefetcher).
// An event loop that finds several pipelined commands buffered on a connection passes their
// second arguments (the key of most commands) to Prefetch, then runs the commands. Prefetch must
// not change anything a command can observe; the keys alias the read buffer and are valid only
// during the call.
type Prefetcher interface {
	Prefetch(keys [][]byte)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(c *Conn, args [][]byte) Reply

// ServeRESP calls f(c, args).
func (f HandlerFunc) ServeRESP(c *Conn, args [][]byte) Reply { return f(c, args) }

// Config configures a Server. The zero value listens on no address; fill Addr.
type Config struct {
	// Addr is the TCP address to listen on, e.g. "127.0.0.1:6379".
	Addr string
	// MaxClients is the most connections served at once (0: 10000). Extra connections get
	// "-ERR max number of clients reached" and are closed.
	MaxClients int
	// IdleTimeout closes a client idle this long (0: never).
	IdleTimeout time.Duration
	// RequireAuth makes new connections unauthenticated until AUTH or HELLO AUTH succeeds.
	RequireAuth bool
	// Limits bound request sizes.
	Limits Limits
	// Logger receives connection-level errors; nil discards them.
	Logger *slog.Logger
	// OnAccept, when set, is called for every accepted connection (total_connections_received).
	OnAccept func()
	// OnProtocolError, when set, is called with the text of every protocol error answered
	// (Redis counts them among its error replies).
	OnProtocolError func(text string)
	// AdmitOverLimit, when set, lets up to OverLimitReserve connections in beyond MaxClients, so
	// that cluster peers can still connect to a node its clients have filled: such a connection
	// may only run the commands AdmitOverLimit accepts (a peer's handshake) until it becomes a
	// peer's (SetPeer); any other command gets the max-clients error and closes it.
	AdmitOverLimit func(args [][]byte) bool
	// EventLoops is the number of epoll event loops serving connections (Linux only, and only when
	// the Handler is an Inliner). A connection on a loop costs one read and one write system call
	// per request and no goroutine switch; commands the Inliner declines run on a goroutine of
	// the connection's own. 0 serves every connection from a goroutine of its own.
	EventLoops int
	// Prefetcher, when set, warms the caches for the pipelined commands an event loop is about
	// to run; nil leaves them to take their cache misses one after the other.
	Prefetcher Prefetcher
}

// Server is a RESP listener.
type Server struct {
	cfg     Config
	handler Handler
	inliner Inliner // handler as an Inliner; nil when it is not one
	log     *slog.Logger

	ln       net.Listener
	ctx      context.Context // parent of every connection's context
	cancel   context.CancelFunc
	closing  atomic.Bool
	conns    sync.WaitGroup // one per open connection, done in closeConn
	acceptWG sync.WaitGroup // the accept loop
	loopList []*loop        // the event loops, when EventLoops > 0; set under mu
	loops    sync.WaitGroup // one per running event loop
	nextID   atomic.Int64
	count    atomic.Int64 // open connections
	// maxClients is Config.MaxClients, which SetMaxClients changes while serving.
	maxClients atomic.Int64

	mu      sync.Mutex // guards clients, closedIn, closedOut and loopList; orders Serve starting with Shutdown
	clients map[*Conn]struct{}
	// closedIn and closedOut are the bytes of the connections closed so far (NetStats).
	closedIn, closedOut uint64
	rejected            atomic.Uint64 // connections refused for the client limit

	shutdownOnce sync.Once
	shutdownErr  error
}

// NewServer returns a Server that will pass commands to h.
func NewServer(cfg Config, h Handler) *Server {
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 10000
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	inl, _ := h.(Inliner)
	s := &Server{cfg: cfg, handler: h, inliner: inl, log: log, ctx: ctx, cancel: cancel,
		clients: make(map[*Conn]struct{})}
	s.maxClients.Store(int64(cfg.MaxClients))
	return s
}

// SetMaxClients changes how many connections are served at once (CONFIG SET maxclients). The
// connections already open stay; new ones beyond the limit are refused, as in Redis.
func (s *Server) SetMaxClients(n int) { s.maxClients.Store(int64(n)) }

// Listen binds the configured address. It is separate from Serve so that start-up can fail
// before anything runs and tests can learn the port (Addr) of ":0".
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address, or nil before Listen.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts connections until Shutdown. It returns nil after a Shutdown.
func (s *Server) Serve() error {
	// Registered under mu, where Shutdown marks the server closing before it waits: a Serve that
	// starts after Shutdown returns at once instead of adding to a WaitGroup being waited on.
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return nil
	}
	s.acceptWG.Add(1)
	s.mu.Unlock()
	defer s.acceptWG.Done()
	if s.cfg.EventLoops > 0 && s.inliner != nil && loopsSupported && !s.closing.Load() {
		if err := s.startLoops(s.cfg.EventLoops); err != nil {
			s.log.Warn("event loops unavailable; serving each client from a goroutine", "err", err)
		}
	}
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// Running out of file descriptors is transient: back off instead of spinning.
			s.log.Warn("accept failed", "err", err)
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-s.ctx.Done():
				return nil
			}
		}
		n := s.count.Add(1)
		limit := s.maxClients.Load()
		over := n > limit
		if over && (s.cfg.AdmitOverLimit == nil || n > limit+OverLimitReserve) {
			s.count.Add(-1)
			s.rejected.Add(1)
			_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(nc, errMaxClients)
			_ = nc.Close()
			continue
		}
		if s.cfg.OnAccept != nil {
			s.cfg.OnAccept()
		}
		if len(s.loopList) > 0 {
			nc = wrapForLoop(nc)
		}
		c := s.newConn(nc)
		c.overLimit = over
		s.conns.Add(1)
		if len(s.loopList) > 0 {
			l := s.loopList[int(c.ID)%len(s.loopList)]
			if l.attach(c) && l.give(c) {
				continue
			}
		}
		go s.serveConn(c, nil, nil)
	}
}

// Clients calls fn for every open connection, oldest first (by ID), as Redis lists its clients.
func (s *Server) Clients(fn func(c *Conn)) {
	s.mu.Lock()
	list := make([]*Conn, 0, len(s.clients))
	for c := range s.clients {
		list = append(list, c)
	}
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b *Conn) int { return cmp.Compare(a.ID, b.ID) })
	for _, c := range list {
		fn(c)
	}
}

// ClientCount returns the number of open connections, cluster peers' excluded.
func (s *Server) ClientCount() int { return int(s.count.Load()) }

// NetStats returns the bytes read from and written to every connection since the server
// started, and the connections refused for the client limit (INFO total_net_input_bytes,
// total_net_output_bytes, rejected_connections).
func (s *Server) NetStats() (in, out, rejected uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, out = s.closedIn, s.closedOut
	for c := range s.clients {
		in += c.netIn.Load()
		out += c.netOut.Load()
	}
	return in, out, s.rejected.Load()
}

// Shutdown stops accepting, lets every connection finish the command batch it is executing,
// then closes the connections. When ctx ends first, remaining connections are closed at once and
// ctx's error is returned. Shutdown is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.mu.Lock()
		s.closing.Store(true)
		s.mu.Unlock()
		if s.ln != nil {
			_ = s.ln.Close()
		}
		s.acceptWG.Wait()
		// A connection on an event loop is never in the middle of a command when its loop sees
		// the stop: the loops close theirs at once.
		s.mu.Lock()
		loops := s.loopList
		s.mu.Unlock()
		for _, l := range loops {
			l.stop()
		}
		s.loops.Wait()
		// Wake connections blocked in Read; one executing a command finishes it first and then
		// notices closing. One blocked writing replies its client does not read gets writeGrace
		// to take them.
		s.Clients(func(c *Conn) {
			_ = c.nc.SetReadDeadline(time.Now())
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeGrace))
		})
		done := make(chan struct{})
		go func() { s.conns.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.cancel()
			s.Clients(func(c *Conn) { _ = c.nc.Close() })
			<-done
			s.shutdownErr = ctx.Err()
		}
		s.cancel()
	})
	return s.shutdownErr
}

func (s *Server) newConn(nc net.Conn) *Conn {
	ctx, cancel := context.WithCancel(s.ctx)
	c := &Conn{
		ID:       s.nextID.Add(1),
		server:   s,
		nc:       nc,
		ctx:      ctx,
		cancel:   cancel,
		created:  time.Now(),
		authed:   !s.cfg.RequireAuth,
		redirect: -1,
	}
	c.SetProto(2)
	c.lastActive.Store(c.created.UnixMilli())
	c.rd = NewReader(nc, s.cfg.Limits)
	c.rd.counted = &c.netIn
	c.rd.SetRequireAuth(s.cfg.RequireAuth)
	s.mu.Lock()
	s.clients[c] = struct{}{}
	s.mu.Unlock()
	return c
}

// giveBackAfter is how many consecutive commands the event loop could have run a connection must
// send before its goroutine gives it back to the loop: one that mixes in commands the loop
// declines (forwards to a cluster peer, FETCHLOCK) stays on its goroutine instead of moving back
// and forth.
const giveBackAfter = 16

// OverLimitReserve is how many connections beyond MaxClients may wait to become a peer's
// (Config.AdmitOverLimit).
const OverLimitReserve = 32

// errMaxClients is the reply to a connection over the limit.
const errMaxClients = "-ERR max number of clients reached\r\n"

// writeGrace is how long Shutdown lets a client take the replies already being written to it.
const writeGrace = 2 * time.Second

// maxPendingOutput is the reply backlog after which a batch flushes before reading on.
const maxPendingOutput = 64 << 10

// serveConn serves c from a goroutine of its own ("goroutine mode"). When c comes from an event
// loop, it first runs args, the command the loop declined, or answers perr, the protocol error
// the loop met. It returns once c is closed, or once it has given c back to its event loop:
// that happens when c is idle after a command the loop could have run itself.
func (s *Server) serveConn(c *Conn, args [][]byte, err error) {
	givenBack := false
	defer func() {
		// A handler bug must not take the process down; the client loses only its connection.
		if p := recover(); p != nil {
			s.log.Error("panic serving connection", "client", c.ID, "panic", p)
		}
		if !givenBack {
			s.closeConn(c)
		}
	}()
	// Consecutive commands the event loop would have run itself. A connection the loop handed
	// over only because a reply did not fit in the socket may go back at once.
	inlineRun := 0
	if args == nil {
		inlineRun = giveBackAfter
	}
	for {
		if args == nil && err == nil {
			if c.quit { // QUIT ran on the loop, which could not write its reply
				_ = c.flush()
				return
			}
			args, err = c.rd.Next()
		}
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) {
				c.Settle() // the replies of the commands before it go first
				text := "ERR " + pe.Error()
				if s.cfg.OnProtocolError != nil {
					s.cfg.OnProtocolError(text)
				}
				c.out = Append(c.out, Error(text), c.proto)
				if c.flush() == nil {
					c.lingerClose()
				}
			}
			_ = c.flush()
			return
		}
		if args == nil {
			if c.flush() != nil || c.quit || s.closing.Load() {
				return
			}
			if inlineRun >= giveBackAfter && c.loop != nil && !c.watching && len(c.waiting) == 0 {
				if s.cfg.IdleTimeout > 0 && !c.peer {
					_ = c.nc.SetReadDeadline(time.Time{}) // the loop keeps the idle timeout
				}
				if c.loop.give(c) {
					givenBack = true
					return
				}
			}
			if s.cfg.IdleTimeout > 0 && !c.peer {
				_ = c.nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
				if s.closing.Load() { // Shutdown may have set its deadline just before ours
					return
				}
			}
			if c.watching {
				err = c.collectWatch() // the watcher left by Blocking is already reading
			} else {
				if c.waitingInput() { // pushes queued since the flush: write them first
					c.idleRead.Store(false)
					continue
				}
				err = c.rd.Fill()
				c.noteBuffers()
			}
			if c.inputWaitOver(err) { // a push cut the wait short: write it, wait again
				if s.cfg.IdleTimeout <= 0 || c.peer {
					_ = c.nc.SetReadDeadline(time.Time{})
				}
				err = nil
				continue
			}
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) && !s.closing.Load() {
					s.log.Debug("client read failed", "client", c.ID, "err", err)
				}
				return
			}
			c.lastActive.Store(time.Now().UnixMilli())
			continue
		}
		if c.overLimit && !s.cfg.AdmitOverLimit(args) {
			s.rejected.Add(1)
			c.out = append(c.out, errMaxClients...)
			_ = c.flush()
			return
		}
		if c.pushing.Load() && len(c.waiting) == 0 {
			c.takePushes() // queued before this command: they go before its reply
		}
		var reply Reply
		if c.loop != nil {
			var ok bool
			if reply, ok = s.inliner.TryServeRESP(c, args); !ok {
				reply = s.handler.ServeRESP(c, args)
			}
			if inlineRun++; !ok {
				inlineRun = 0
			}
		} else {
			reply = s.handler.ServeRESP(c, args)
		}
		args = nil
		if c.peerGone.Load() || c.hangup { // nobody is left to read the reply, or none is due
			return
		}
		if c.muting {
			reply = c.filter(reply)
		}
		if reply.Later != nil || len(c.waiting) > 0 {
			c.later(reply) // keep the order of the replies
		} else {
			c.out = Append(c.out, reply, c.proto)
			if c.pushing.Load() {
				c.takePushes()
			}
		}
		if c.quit {
			_ = c.flush()
			return
		}
		if len(c.out) > maxPendingOutput {
			if c.flush() != nil {
				return
			}
		}
	}
}

func (s *Server) closeConn(c *Conn) {
	c.cancel()
	_ = c.nc.Close()
	if c.watching {
		_ = c.collectWatch() // Close ended its read
	}
	s.mu.Lock()
	delete(s.clients, c)
	s.closedIn += c.netIn.Load() // with the delete, so that NetStats counts it once
	s.closedOut += c.netOut.Load()
	s.mu.Unlock()
	if !c.peer {
		s.count.Add(-1)
	}
	c.runCloseHooks()
	s.conns.Done()
}
