package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vela-cache/vela/resp"
)

// ErrNotAnswering is the error of a request to a peer that let a request time out a moment ago
// and has not answered a probe since: the request failed at once instead of waiting out its own
// timeout. It wraps
// ErrTimeout: the peer is still there, only silent (a stopped process, a paused machine, a
// network that drops packets).
var ErrNotAnswering = fmt.Errorf("%w; requests fail at once until it answers again", ErrTimeout)

// probeEvery is the pause between two probes of a peer that is not answering. A probe of a
// silent peer also waits DialTimeout for its answer, so a silent peer costs a connection
// attempt per DialTimeout + probeEvery.
const probeEvery = 50 * time.Millisecond

// errSilentDial marks a dial that failed because the peer did not answer in time (the
// connection or the handshake timed out), as opposed to one it refused.
var errSilentDial = errors.New("no answer in time")

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// A peer that lets a request time out is "not answering" until it answers a probe: a new
// connection, the handshake and a PING, made by a goroutine of its own. Meanwhile every request
// to it (Send, SendOn, Exclusive) fails at once with ErrNotAnswering instead of waiting for its
// timeout: with a silent peer, a client waits for at most one timeout, not one per request, and
// a read with other holders to ask (partition replicas) asks them at once.

// Silence records which peers are not answering, for the pools that share it (Config.Silence):
// a node's pools to the same members (forwards, copies) learn of a stopped member together, so
// that it costs a client one timeout, not one per pool.
type Silence struct {
	mu    sync.Mutex
	peers map[string]*silentState
}

// NewSilence returns a Silence in which every peer is answering.
func NewSilence() *Silence { return &Silence{peers: map[string]*silentState{}} }

// silentState is one peer's entry in a Silence.
type silentState struct {
	on  atomic.Bool // the peer is not answering: requests fail at once
	err error       // what they fail with
}

// Answering reports whether addr is answering, as far as the pools that share s know: it has
// not let a request time out since it last answered a probe.
func (s *Silence) Answering(addr string) bool {
	s.mu.Lock()
	st := s.peers[addr]
	s.mu.Unlock()
	return st == nil || !st.on.Load()
}

// state returns addr's entry, creating it (answering) on first use.
func (s *Silence) state(addr string) *silentState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.peers[addr]
	if st == nil {
		st = &silentState{err: fmt.Errorf("%s: %w", addr, ErrNotAnswering)}
		s.peers[addr] = st
	}
	return st
}

// notAnswering reports whether requests to pc fail fast, and with which error.
func (pc *peerConns) notAnswering() (bool, error) {
	if !pc.silent.on.Load() {
		return false, nil
	}
	return true, pc.silent.err
}

// silentFor notes that a request to pc waited out its timeout (err): the peer is marked not
// answering and a probe starts, unless one runs already.
func (p *Pool) silentFor(pc *peerConns, err error) {
	silent := errors.Is(err, ErrTimeout) || errors.Is(err, errSilentDial)
	if !silent || errors.Is(err, ErrNotAnswering) || !pc.silent.on.CompareAndSwap(false, true) {
		return
	}
	p.mu.Lock()
	if p.closed || p.peers[pc.addr] != pc { // closed or forgotten: nothing to probe for
		p.mu.Unlock()
		pc.silent.on.Store(false)
		return
	}
	p.silentPeers.Add(1)
	p.writers.Add(1)
	p.mu.Unlock()
	p.log.Warn("peer stopped answering; its requests fail at once until it answers again", "peer", pc.addr, "err", err)
	go func() {
		defer p.writers.Done()
		p.probe(pc)
	}()
}

// probe asks pc until it answers (or refuses connections, or is forgotten, or the pool closes),
// then lets requests through again.
func (p *Pool) probe(pc *peerConns) {
	defer func() {
		pc.silent.on.Store(false)
		p.silentPeers.Add(-1)
	}()
	start := time.Now()
	t := time.NewTimer(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-pc.gone:
			return
		case <-t.C:
		}
		err := p.ping(pc)
		switch {
		case err == nil:
			p.log.Info("peer answers again", "peer", pc.addr, "silent_for", time.Since(start).Round(time.Millisecond))
			return
		case errors.Is(err, ErrUnreachable):
			// Refused: not silent but gone (or restarting). Dials fail fast on their own.
			pc.downUntil.Store(time.Now().Add(downFor).UnixNano())
			p.log.Info("peer no longer silent but unreachable", "peer", pc.addr, "err", err)
			return
		}
		t.Reset(probeEvery)
	}
}

// ping connects to pc, runs the handshake and a PING, within DialTimeout. It returns nil when
// the peer answered, an error wrapping ErrUnreachable when it refused the connection, and
// another (ErrTimeout) when it did not answer.
func (p *Pool) ping(pc *peerConns) error {
	deadline := time.Now().Add(p.cfg.DialTimeout)
	nc, br, err := p.connect(pc.addr, deadline)
	if errors.Is(err, errSilentDial) {
		return fmt.Errorf("%s: %w (%v)", pc.addr, ErrTimeout, err)
	}
	if err != nil {
		return err
	}
	defer nc.Close()
	stop := pc.closeOnGone(nc)
	defer stop()
	_ = nc.SetDeadline(deadline)
	if _, err = nc.Write(resp.AppendCommand(nil, []byte("PING"))); err == nil {
		_, err = resp.ReadReply(br)
	}
	if err != nil {
		return fmt.Errorf("%s: %w (%v)", pc.addr, ErrTimeout, err)
	}
	return nil
}

// closeOnGone closes nc when pc is forgotten or the pool closes, so that a probe waiting for a
// silent peer does not hold up Close; the returned function stops that.
func (pc *peerConns) closeOnGone(nc net.Conn) func() {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		select {
		case <-pc.gone:
			_ = nc.Close()
		case <-done:
		}
	}()
	return func() { close(done); <-ended }
}

// NotAnswering returns the addresses of the peers currently not answering (see
// ErrNotAnswering).
func (p *Pool) NotAnswering() []string {
	var out []string
	if m := p.byAddr.Load(); m != nil {
		for addr, pc := range *m {
			if pc.silent.on.Load() {
				out = append(out, addr)
			}
		}
	}
	return out
}

// SilentCounts returns, over pools (a node's pools to the same peers), how many peers any of
// them finds not answering, and how many requests they failed at once because of it.
func SilentCounts(pools ...*Pool) (peers int, failedFast int64) {
	silent := map[string]bool{}
	for _, p := range pools {
		for _, a := range p.NotAnswering() {
			silent[a] = true
		}
		failedFast += p.FailedFast()
	}
	return len(silent), failedFast
}

// SilentInfo returns SilentCounts as INFO lines: cluster_peers_not_answering and
// cluster_requests_failed_fast.
func SilentInfo(pools ...*Pool) []string {
	peers, fast := SilentCounts(pools...)
	return []string{
		fmt.Sprintf("cluster_peers_not_answering:%d", peers),
		fmt.Sprintf("cluster_requests_failed_fast:%d", fast),
	}
}

// FailedFast returns how many requests have failed at once because their peer was not
// answering.
func (p *Pool) FailedFast() int64 { return p.failedFast.Load() }
