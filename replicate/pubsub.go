package replicate

import (
	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
)

var _ commands.Publisher = (*Cluster)(nil)

// Publish implements commands.Publisher, as the partitioned topology does: every other member
// delivers the message to its own subscribers, and the deliveries add up. It travels with
// forwarded writes, not copies, on the connection this client's commands use. A member behind
// is asked too: its clients subscribe while it catches up.
func (cl *Cluster) Publish(c *commands.Ctx, args [][]byte) int64 {
	v := cl.view.Load()
	others := peer.Others(v.ring.Members(), cl.self, v.addrs)
	if cl.stats.On() {
		cl.stats.Forwards.Add(uint64(len(others)))
	}
	return peer.SumInts(cl.forwards.SendAll(others, args, pick(c), cl.cfg.ForwardTimeout))
}
