package commands

import "time"

// WatchedCount is how many (key, transaction) watches the node's index holds.
func WatchedCount(n *Node) int64 { return n.watches.count.Load() }

// SetScriptLimit sets how long a script may run on n; call it before n runs any.
func SetScriptLimit(n *Node, d time.Duration) { n.scripts.runner.SetLimit(d) }
