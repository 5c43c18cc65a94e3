package partition

import (
	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
)

var _ commands.Publisher = (*Cluster)(nil)

// Publish implements commands.Publisher: a PUBLISH goes to every other member at once, each
// delivering it to its own subscribers, and the deliveries add up. A member's subscribers are
// its own clients', wherever the channel's name would place it on the ring, so every member is
// asked. One client's messages keep their order: they go on the connection to each member that
// its commands use (pick).
func (cl *Cluster) Publish(c *commands.Ctx, args [][]byte) int64 {
	v := cl.view.Load()
	others := peer.Others(v.ring.Members(), cl.self, v.addrs)
	if cl.stats.On() {
		cl.stats.Forwards.Add(uint64(len(others)))
	}
	return peer.SumInts(cl.pool.SendAll(others, args, pick(c), cl.cfg.ForwardTimeout))
}
