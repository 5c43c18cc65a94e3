package commands

import (
	"errors"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN], as Redis 7.0 answers it: the
// longest common subsequence of the two values (a missing key counts as empty), its length, or
// the matching ranges, found by the same dynamic programme and the same walk back through it as
// Redis's, so that ties resolve the same way. Its table takes 4 bytes per pair of positions and
// may not exceed proto_max_bulk_len, as in Redis. In a cluster both keys must live on one
// member (else CROSSSLOT), as in Redis Cluster.

// LCS errors, with Redis's texts.
const (
	errLCSNotString = Error("ERR The specified keys must contain string values")
	errLCSLenAndIdx = Error("ERR If you want both the length and indexes, please just use IDX.")
	errLCSTooLarge  = Error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
)

// lcs serves LCS.
func (n *Node) lcs(c *Ctx, args [][]byte) (resp.Reply, error) {
	// Redis reads both keys before it looks at the options.
	var vals [2][]byte
	for i := range vals {
		res, err := n.do(c, args[1+i], store.Op{Kind: store.Get})
		if errors.Is(err, store.ErrWrongType) {
			return resp.Reply{}, errLCSNotString
		} else if err != nil {
			return resp.Reply{}, err
		}
		vals[i] = res.Value
	}
	var getLen, getIdx, withLen bool
	var minLen int64
	for i := 3; i < len(args); i++ {
		switch {
		case equalFold(args[i], "idx"):
			getIdx = true
		case equalFold(args[i], "len"):
			getLen = true
		case equalFold(args[i], "withmatchlen"):
			withLen = true
		case equalFold(args[i], "minmatchlen") && i+1 < len(args):
			v, err := intArg(args[i+1])
			if err != nil {
				return resp.Reply{}, err
			}
			minLen = max(v, 0)
			i++
		default:
			return resp.Reply{}, ErrSyntax
		}
	}
	if getIdx && getLen {
		return resp.Reply{}, errLCSLenAndIdx
	}
	a, b := vals[0], vals[1]
	cells := int64(len(a)+1) * int64(len(b)+1)
	if cells*4 > n.cfg.MaxBulkLen {
		return resp.Reply{}, errLCSTooLarge
	}
	t := lcsTable(a, b)
	if getLen {
		return resp.Int(int64(t.at(len(a), len(b)))), nil
	}
	common, matches := t.walk(a, b, getIdx, minLen, withLen)
	if !getIdx {
		return resp.Bulk(common), nil
	}
	return resp.Map([]resp.Reply{
		resp.BulkString("matches"), resp.Array(matches),
		resp.BulkString("len"), resp.Int(int64(t.at(len(a), len(b)))),
	}), nil
}

// lcsGrid is the dynamic programme's table: at(i, j) is the length of the longest common
// subsequence of a[:i] and b[:j].
type lcsGrid struct {
	cells []uint32
	width int // len(b)+1
}

func (t lcsGrid) at(i, j int) uint32 { return t.cells[i*t.width+j] }

// lcsTable fills the table for a and b.
func lcsTable(a, b []byte) lcsGrid {
	t := lcsGrid{cells: make([]uint32, (len(a)+1)*(len(b)+1)), width: len(b) + 1}
	for i := 1; i <= len(a); i++ {
		row, prev := t.cells[i*t.width:(i+1)*t.width], t.cells[(i-1)*t.width:i*t.width]
		for j := 1; j <= len(b); j++ {
			switch {
			case a[i-1] == b[j-1]:
				row[j] = prev[j-1] + 1
			case prev[j] > row[j-1]:
				row[j] = prev[j]
			default:
				row[j] = row[j-1]
			}
		}
	}
	return t
}

// walk goes back through the table from its end, as Redis's lcsCommand does, and returns the
// common subsequence and, with ranges, the matching ranges of at least minLen bytes, last
// first: [[aStart, aEnd], [bStart, bEnd]] and, with withLen, the range's length.
func (t lcsGrid) walk(a, b []byte, ranges bool, minLen int64, withLen bool) (common []byte, matches []resp.Reply) {
	idx := int(t.at(len(a), len(b)))
	common = make([]byte, idx)
	matches = []resp.Reply{}
	none := len(a) // aStart == len(a): no range open
	aStart, aEnd, bStart, bEnd := none, 0, 0, 0
	i, j := len(a), len(b)
	for i > 0 && j > 0 {
		emit := false
		if a[i-1] == b[j-1] {
			common[idx-1] = a[i-1]
			switch {
			case aStart == none:
				aStart, aEnd, bStart, bEnd = i-1, i-1, j-1, j-1
			case aStart == i && bStart == j: // contiguous: extend the range backwards
				aStart--
				bStart--
			default:
				emit = true
			}
			if aStart == 0 || bStart == 0 {
				emit = true
			}
			idx, i, j = idx-1, i-1, j-1
		} else {
			if t.at(i-1, j) > t.at(i, j-1) {
				i--
			} else {
				j--
			}
			if aStart != none {
				emit = true
			}
		}
		if emit {
			length := int64(aEnd - aStart + 1)
			if ranges && (minLen == 0 || length >= minLen) {
				m := []resp.Reply{
					resp.Array([]resp.Reply{resp.Int(int64(aStart)), resp.Int(int64(aEnd))}),
					resp.Array([]resp.Reply{resp.Int(int64(bStart)), resp.Int(int64(bEnd))}),
				}
				if withLen {
					m = append(m, resp.Int(length))
				}
				matches = append(matches, resp.Array(m))
			}
			aStart = none
		}
	}
	return common, matches
}
