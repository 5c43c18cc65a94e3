package commands

import (
	"strings"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key and OBJECT HELP: what Redis's introspection command
// tells of a key, answered by its store (store.Describer) without counting as an access.
//
//   - ENCODING is the representation Redis would have chosen for the value, which depends on the
//     command that wrote it ("int", "embstr" or "raw"; see store.Encoding).
//   - REFCOUNT is 1, or Redis's count for its shared small integers.
//   - IDLETIME is the seconds since the key was last read or written, tracked by the memory
//     store under the ttl_only and lru policies, as Redis tracks it except under LFU.
//   - FREQ is the LFU access counter, under the lfu policy only.
//
// On the redis store each subcommand is Redis's own answer. In a cluster it runs on the key's
// owner.

// Redis's replies to IDLETIME and FREQ under the other kind of policy.
var (
	errIdleUnderLFU = Error("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
	errFreqNotLFU   = Error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
)

func (n *Node) registerObject() {
	const g = "generic"
	field := func(name string, f store.ObjectField) *Command {
		return &Command{Name: "object|" + name, Arity: 3, Flags: FlagReadOnly, FirstKey: 2, LastKey: 2, KeyStep: 1,
			Group: g, Handler: func(c *Ctx, args [][]byte) (resp.Reply, error) { return n.object(c, args, f) }}
	}
	n.table.Register(&Command{Name: "object", Arity: -2, Group: g,
		Subcommands: map[string]*Command{
			"encoding": field("encoding", store.ObjectEncoding),
			"refcount": field("refcount", store.ObjectRefCount),
			"idletime": field("idletime", store.ObjectIdleTime),
			"freq":     field("freq", store.ObjectFreq),
			"help":     {Name: "object|help", Arity: 2, Flags: FlagLoading, Handler: n.objectHelp, Group: g},
		}})
}

func (n *Node) object(c *Ctx, args [][]byte, f store.ObjectField) (resp.Reply, error) {
	d, ok := n.store.(store.Describer)
	if !ok {
		return resp.Reply{}, Error("ERR OBJECT is not supported by this store")
	}
	obj, found, err := d.Object(c.Context(), args[2], f)
	switch {
	case err != nil:
		return resp.Reply{}, err
	case !found:
		return resp.Nil, nil
	}
	switch f {
	case store.ObjectEncoding:
		return resp.BulkString(obj.Encoding), nil
	case store.ObjectRefCount:
		return resp.Int(obj.RefCount), nil
	case store.ObjectIdleTime:
		if obj.Idle >= 0 {
			return resp.Int(obj.Idle), nil
		}
		if n.lfu() {
			return resp.Reply{}, errIdleUnderLFU
		}
		return resp.Reply{}, Error("ERR OBJECT IDLETIME is not supported by this store: it keeps no access times")
	default:
		if obj.Freq >= 0 {
			return resp.Int(obj.Freq), nil
		}
		return resp.Reply{}, errFreqNotLFU
	}
}

// lfu reports whether the node runs an LFU eviction policy.
func (n *Node) lfu() bool { return strings.Contains(n.setting("maxmemory-policy", ""), "lfu") }

func (n *Node) objectHelp(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return HelpReply("OBJECT",
		"ENCODING <key>",
		"    Return the kind of internal representation used in order to store the value",
		"    associated with a <key>.",
		"FREQ <key>",
		"    Return the access frequency index of the <key>. The returned integer is",
		"    proportional to the logarithm of the recent access frequency of the key.",
		"IDLETIME <key>",
		"    Return the idle time of the <key>, that is the approximated number of",
		"    seconds elapsed since the last access to the key.",
		"REFCOUNT <key>",
		"    Return the number of references of the value associated with the specified",
		"    <key>.",
	), nil
}
