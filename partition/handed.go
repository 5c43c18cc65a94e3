package partition

// Where handed-on keys went: what keeps a member whose ring lags a join from running a command
// on a missing key that the joiner has taken.
//
// A member whose ring has seen a member leave but not another join takes itself for the owner
// of keys the joiner owns. When the joiner has already taken such a key from its previous owner
// (VELA TAKE), or that owner's handoff pass has sent it there, the lagging member's pull finds
// nothing: the previous owner no longer holds it, and nobody the lagging member knows of does.
// Run there, an INCR would start from a missing key, and one of the two copies would later be
// dropped with the increments made on it.
//
// So a member that hands a key on, by TAKE (which names the asker) or by its handoff pass,
// records where it went, for its handoff window, and answers a later TAKE of that key with
// HANDED-TO addr member instead of nil (or LEAVING). The asker then asks that member in turn
// if it knows it (its ring has the member: the two rings disagree, and the holder's
// awaitNotOwner decides, as for any pull). If it does not know it, its ring lags: it does not
// run the command on the missing key, but sends it to that member as VELA FINAL, which runs it
// on the key's copy (or passes it on by that member's ring), and it remembers where the key is,
// so that its next commands on the key go there without asking again. A FINAL that lands on a
// member which finds its key handed on this way goes on once more as VELA LAST, which runs
// where it lands: a command is sent on this way at most twice, and never loops.
//
// A key must not end up on two members either. The handoff pass sends a key's copy by the ring
// it runs for, which may have changed by the time the copy lands; a TAKE from a member that
// owns the key in a newer ring would then give it a second copy. So a TAKE of a key whose
// handoff copy is on its way to another member waits for it to land (inFlight), then answers
// where it went; and a copy pushed ahead of a command (pushCopies) is not sent for such a key:
// the member the command lands on pulls it, and is told where it went.

import (
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/resp"
)

// dest is a member a key went to, and its RESP address (which the member asking may not know
// yet).
type dest struct{ member, addr string }

// handedToPrefix starts the answer to VELA TAKE for a key this member has handed on: the
// error HANDED-TO addr member (the address first: a member name may hold spaces).
const handedToPrefix = "HANDED-TO "

// handedToReply is the answer to VELA TAKE for a key that went to d.
func handedToReply(d *dest) resp.Reply {
	return resp.Error(handedToPrefix + d.addr + " " + d.member)
}

// parseHandedTo reads a HANDED-TO answer.
func parseHandedTo(s string) (dest, bool) {
	rest, ok := strings.CutPrefix(s, handedToPrefix)
	if !ok {
		return dest{}, false
	}
	addr, member, ok := strings.Cut(rest, " ")
	if !ok || member == "" {
		return dest{}, false
	}
	return dest{member: member, addr: addr}, true
}

// takeArgs is the VELA TAKE request for key: it names this member and its address, so that the
// member handing the key out can tell a later asker where the key went.
func (cl *Cluster) takeArgs(v *view, key []byte) [][]byte {
	args := [][]byte{[]byte("VELA"), []byte("TAKE"), key}
	if addr := cl.selfAddr(v); addr != "" {
		args = append(args, []byte(cl.self), []byte(addr))
	}
	return args
}

// selfAddr is this member's RESP address as the other members reach it ("" when unknown).
func (cl *Cluster) selfAddr(v *view) string {
	if a := v.addrs[cl.self]; a != "" {
		return a
	}
	if cl.ml != nil {
		return cl.ml.Self().RESP
	}
	return ""
}

// sentTo records, for the handoff window, that key is no longer here but at d: handed out by
// TAKE or by the handoff pass, or found there by a pull. The caller has just dropped the key,
// or found it missing. Past Config.Tombstones records, no more are kept (a later asker then
// finds nothing, as before there were any).
func (cl *Cluster) sentTo(key []byte, d dest) {
	if d.member == "" || d.member == cl.self {
		return
	}
	cl.ensureFence()
	h := xxhash.Sum64(key)
	mu := &cl.fenceMu[h%numStripes]
	mu.Lock()
	if f := cl.view.Load().fence; f != nil {
		f.addAwayLocked(h, f.intern(d))
	}
	mu.Unlock()
}

// wentTo returns where key went, if this member handed it on (or found it elsewhere) during
// the current window.
func (cl *Cluster) wentTo(key []byte) (*dest, bool) {
	h := xxhash.Sum64(key)
	mu := &cl.fenceMu[h%numStripes]
	mu.Lock()
	defer mu.Unlock()
	f := cl.view.Load().fence
	if f == nil {
		return nil, false
	}
	d, ok := f.away[h%numStripes][h]
	return d, ok
}

// intern returns the one *dest of f equal to d: records point to a handful of members, and a
// handoff pass may record many keys.
func (f *fence) intern(d dest) *dest {
	f.destMu.Lock()
	defer f.destMu.Unlock()
	if p, ok := f.dests[d]; ok {
		return p
	}
	if f.dests == nil {
		f.dests = map[dest]*dest{}
	}
	p := &d
	f.dests[d] = p
	return p
}

// addAwayLocked records that the key hashing to h went to d. The caller holds
// fenceMu[h%numStripes].
func (f *fence) addAwayLocked(h uint64, d *dest) {
	m := f.away[h%numStripes]
	if _, ok := m[h]; !ok {
		if f.nAway.Load() >= f.limit {
			return
		}
		f.nAway.Add(1)
	}
	if m == nil {
		m = make(map[uint64]*dest)
		f.away[h%numStripes] = m
	}
	m[h] = d
}

// dropAwayLocked forgets where the key hashing to h went: a copy of it is installed here again.
// The caller holds fenceMu[h%numStripes].
func (f *fence) dropAwayLocked(h uint64) {
	if m := f.away[h%numStripes]; m != nil {
		if _, ok := m[h]; ok {
			delete(m, h)
			f.nAway.Add(-1)
		}
	}
}

// redirect sends a command on a key this member found handed on to a member its ring does not
// know yet (pull) to that member, as VELA wrap (FINAL, or LAST for a FINAL), which runs it
// where the key is.
func (cl *Cluster) redirect(c *commands.Ctx, to *dest, wrap string, args [][]byte) resp.Reply {
	cl.redirected.Add(1)
	if cl.stats.On() {
		cl.stats.Forwards.Inc()
	}
	return cl.sendTo(c, to.addr, append([][]byte{[]byte("VELA"), []byte(wrap)}, args...))
}

// inFlight is the batch of keys the handoff pass has sent on and drops once their copies have
// landed, with the member each went to. A TAKE of one of them waits for the batch (awaitLanded):
// handed out meanwhile, the key would live on two members, the asker and the member the
// handoff's copy lands on (the pass ran by a ring that has changed since), each taking itself
// for its owner while their rings disagree, and one copy's changes would be lost when the
// other's copy wins.
type inFlight struct {
	mu   sync.Mutex        // guards keys and done
	keys map[uint64]string // key hash → the member its copy goes to
	done chan struct{}     // closed when the batch has landed and its keys are dropped
}

// add notes that key's copy is on its way to member.
func (f *inFlight) add(key []byte, member string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys == nil {
		f.keys, f.done = map[uint64]string{}, make(chan struct{})
	}
	f.keys[xxhash.Sum64(key)] = member
}

// to returns the member key's copy is on its way to ("" when none is), and a channel closed
// once it has landed.
func (f *inFlight) to(key []byte) (string, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keys[xxhash.Sum64(key)], f.done
}

// landed ends the batch: its copies have landed (or failed), and its keys are dropped.
func (f *inFlight) landed() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys != nil {
		close(f.done)
		f.keys, f.done = nil, nil
	}
}

// awaitLanded waits, until deadline at most, while the handoff pass's copy of key is on its
// way to a member other than asker: once it has landed, the key is dropped here and a TAKE
// answers where it went. After the deadline the key is handed out all the same.
func (cl *Cluster) awaitLanded(c *commands.Ctx, key []byte, asker string, deadline time.Time) {
	for {
		m, done := cl.handing.to(key)
		if m == "" || m == asker {
			return
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-done:
			t.Stop()
		case <-t.C:
			return
		case <-c.Context().Done():
			t.Stop()
			return
		}
	}
}
