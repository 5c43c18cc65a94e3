package commands

import (
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// MEMORY USAGE key [SAMPLES count]: what one key costs its store, in bytes (store.Sizer), or a
// null reply for a missing key. The number is the store's own: on the memory store what its
// bounds and used_memory count for the entry (the item at the allocator's size class, its tags,
// its share of its table); on the disk store the bytes its records take in the file; on the
// redis store Redis's own MEMORY USAGE. SAMPLES is checked as Redis checks it and has nothing to
// sample: a string has no elements. In a cluster it runs on the key's owner. MEMORY STATS,
// DOCTOR, MALLOC-STATS and PURGE report on the node's own process (memstats.go).

func (n *Node) registerMemory() {
	const g = "server"
	n.table.Register(&Command{Name: "memory", Arity: -2, Group: g,
		Subcommands: map[string]*Command{
			"usage": {Name: "memory|usage", Arity: -3, Flags: FlagReadOnly, FirstKey: 2, LastKey: 2, KeyStep: 1,
				Handler: n.memoryUsage, Group: g},
			"help":         {Name: "memory|help", Arity: 2, Flags: FlagLoading, Handler: n.memoryHelp, Group: g},
			"stats":        {Name: "memory|stats", Arity: 2, Handler: n.memoryStats, Group: g},
			"doctor":       {Name: "memory|doctor", Arity: 2, Handler: n.memoryDoctor, Group: g},
			"malloc-stats": {Name: "memory|malloc-stats", Arity: 2, Handler: n.memoryMallocStats, Group: g},
			"purge":        {Name: "memory|purge", Arity: 2, Handler: n.memoryPurge, Group: g},
		}})
}

func (n *Node) memoryUsage(c *Ctx, args [][]byte) (resp.Reply, error) {
	for j := 3; j < len(args); j++ {
		if !equalFold(args[j], "samples") || j+1 >= len(args) {
			return resp.Reply{}, ErrSyntax
		}
		v, err := intArg(args[j+1])
		if err != nil {
			return resp.Reply{}, err
		}
		if v < 0 {
			return resp.Reply{}, ErrSyntax
		}
		j++
	}
	sz, ok := n.store.(store.Sizer)
	if !ok {
		return resp.Reply{}, Error("ERR MEMORY USAGE is not supported by this store")
	}
	size, found, err := sz.KeySize(c.Context(), args[2])
	switch {
	case err != nil:
		return resp.Reply{}, err
	case !found:
		return resp.Nil, nil
	}
	return resp.Int(size), nil
}

func (n *Node) memoryHelp(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return HelpReply("MEMORY",
		"DOCTOR",
		"    Return memory problems reports.",
		"MALLOC-STATS",
		"    Return the Go runtime's memory statistics.",
		"PURGE",
		"    Run a garbage collection and return the memory it frees to the system.",
		"STATS",
		"    Return information about the memory usage of the server.",
		"USAGE <key> [SAMPLES <count>]",
		"    Return memory in bytes used by <key> and its value. Nested values are",
		"    sampled up to <count> times (default: 5, 0 means sample all).",
	), nil
}
