package commands

// WatchedCount is how many (key, transaction) watches the node's index holds.
func WatchedCount(n *Node) int64 { return n.watches.count.Load() }
