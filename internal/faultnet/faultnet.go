// Package faultnet cuts the network between in-process cluster nodes in tests, without
// privileges: every node's gossip goes through a memberlist transport that drops packets and
// refuses connections across a cut, and its peer connections through a dialer whose connections
// silently swallow traffic across a cut (a stalled TCP connection, not a reset one: the worst
// case for a client waiting on a forward).
package faultnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/vela-cache/vela/server"
)

// Net is the state of the simulated network: which node owns which address, and which pairs of
// nodes cannot reach each other.
type Net struct {
	mu    sync.Mutex         // guards owner and cut
	owner map[string]string  // gossip or RESP address → node name
	cut   map[[2]string]bool // (from, to) node pairs that cannot reach each other
}

// New returns a network with no cuts.
func New() *Net {
	return &Net{owner: map[string]string{}, cut: map[[2]string]bool{}}
}

// Register records that node listens on addr (its RESP address, once the server started).
func (n *Net) Register(addr, node string) {
	n.mu.Lock()
	n.owner[addr] = node
	n.mu.Unlock()
}

// isCut reports whether node from cannot reach the node at addr.
func (n *Net) isCut(from, addr string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	to, ok := n.owner[addr]
	return ok && n.cut[[2]string{from, to}]
}

// Split cuts every link between a node of side and a node of other.
func (n *Net) Split(side, other []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range side {
		for _, b := range other {
			n.cut[[2]string{a, b}] = true
			n.cut[[2]string{b, a}] = true
		}
	}
}

// Heal removes every cut.
func (n *Net) Heal() {
	n.mu.Lock()
	n.cut = map[[2]string]bool{}
	n.mu.Unlock()
}

// Options returns the server options that put node name on this network: its gossip transport
// (bound to a free loopback port, registered here) and its peer dialer. Register the node's
// RESP address once it has started.
func (n *Net) Options(t testing.TB, name string) []server.Option {
	t.Helper()
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0})
	if err != nil {
		t.Fatal(err)
	}
	n.Register(fmt.Sprintf("127.0.0.1:%d", nt.GetAutoBindPort()), name)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if n.isCut(name, addr) {
			<-ctx.Done() // a SYN into the void
			return nil, errCut
		}
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &conn{Conn: c, n: n, from: name, to: addr}, nil
	}
	return []server.Option{server.WithGossipTransport(&transport{NetTransport: nt, n: n, self: name}),
		server.WithPeerDialer(dial)}
}

var errCut = errors.New("simulated partition: i/o timeout")

// transport is memberlist's own network transport with the cuts applied to what this node
// sends and the connections it opens.
type transport struct {
	*memberlist.NetTransport
	n    *Net
	self string
}

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.n.isCut(t.self, addr) {
		return time.Now(), nil // lost on the way
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.n.isCut(t.self, addr) {
		return nil, errCut
	}
	c, err := t.NetTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, n: t.n, from: t.self, to: addr}, nil
}

func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// conn swallows everything across a cut; once it has lost data it stays a black hole, as a TCP
// connection whose path died would.
type conn struct {
	net.Conn
	n        *Net
	from, to string
	dead     atomic.Bool
}

func (c *conn) lost() bool {
	if c.dead.Load() || c.n.isCut(c.from, c.to) {
		c.dead.Store(true)
		return true
	}
	return false
}

func (c *conn) Write(b []byte) (int, error) {
	if c.lost() {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *conn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		if err != nil || !c.lost() {
			return n, err
		}
	}
}
