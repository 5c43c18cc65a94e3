package commands

import (
	"math"

	"github.com/vela-cache/vela/resp"
)

// MOVE and SWAPDB, as Redis 7.0 answers them with one database, as Vela has (SELECT accepts
// only 0): a move to database 0 is a move to the key's own database, another index is out of
// range, and swapping database 0 with itself changes nothing.

// errSwapFirst and errSwapSecond are SWAPDB's replies to an index that is not an integer.
const (
	errSwapFirst  = Error("ERR invalid first DB index")
	errSwapSecond = Error("ERR invalid second DB index")
)

func (n *Node) registerDatabases() {
	const g = "generic"
	for _, c := range []*Command{
		{Name: "move", Arity: 3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.move},
		{Name: "swapdb", Arity: 3, Flags: FlagWrite | FlagFast, Handler: n.swapdb},
	} {
		c.Group = g
		n.table.Register(c)
	}
}

// move serves MOVE key db: the index is checked as Redis checks it; database 0 is the key's own.
func (n *Node) move(_ *Ctx, args [][]byte) (resp.Reply, error) {
	db, err := intArg(args[2])
	switch {
	case err != nil:
		return resp.Reply{}, err
	case db < math.MinInt32 || db > math.MaxInt32:
		return resp.Reply{}, ErrIntRange
	case db != 0:
		return resp.Reply{}, ErrDBIndex
	}
	return resp.Reply{}, errSameObject
}

// swapdb serves SWAPDB index1 index2: OK for 0 and 0, which swaps nothing.
func (n *Node) swapdb(_ *Ctx, args [][]byte) (resp.Reply, error) {
	var ids [2]int64
	for i, e := range []Error{errSwapFirst, errSwapSecond} {
		id, err := intArg(args[1+i])
		if err != nil || id < math.MinInt32 || id > math.MaxInt32 {
			return resp.Reply{}, e
		}
		ids[i] = id
	}
	if ids[0] != 0 || ids[1] != 0 {
		return resp.Reply{}, ErrDBIndex
	}
	return resp.OK, nil
}
