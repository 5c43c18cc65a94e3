package partition

import (
	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
)

var _ commands.CopyCounter = (*Cluster)(nil)

// AckedCopies implements commands.CopyCounter for WAIT: a write is acknowledged once its copies
// have reached the key's other holders (cluster.replicas − 1 of them, or every other member in
// a smaller cluster), so that is the count, less the members not answering at the moment (one
// of them may be a holder that missed a copy). It is the node's count, not the client's own:
// which members hold a client's keys depends on each key.
func (cl *Cluster) AckedCopies() int {
	v := cl.view.Load()
	if v == nil {
		return 0
	}
	others := peer.Others(v.ring.Members(), cl.self, v.addrs)
	n := min(cl.cfg.Replicas-1, len(others))
	for _, addr := range others {
		if !cl.silence.Answering(addr) {
			n--
		}
	}
	return max(n, 0)
}
