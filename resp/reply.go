package resp

import (
	"strconv"

	"github.com/tidwall/redcon"
)

// Kind says which RESP type a Reply is.
type Kind uint8

// Reply kinds. Where RESP2 has no such type, Append degrades the reply the way Redis does:
// maps become flat arrays, sets become arrays, doubles become bulk strings, booleans become
// integers and verbatim strings become bulk strings.
const (
	KindNil      Kind = iota // null bulk string ($-1 / _)
	KindNilArray             // null array (*-1 / _)
	KindStatus               // simple string (+OK)
	KindError                // error (-ERR ...)
	KindInt                  // integer (:1)
	KindBulk                 // bulk string ($3 foo)
	KindArray                // array (*n)
	KindMap                  // map (%n); Elems holds keys and values alternately
	KindSet                  // set (~n)
	KindDouble               // double (,1.5)
	KindVerbatim             // verbatim string (=), format "txt"
	KindPush                 // out-of-band push (>n)
	KindNone                 // no reply at all: nothing is written (CLIENT REPLY OFF)
	KindSeq                  // several replies, Elems, written one after another (SUBSCRIBE a b)
)

// Reply is one RESP reply value. Handlers return it by value; the connection writes it in the
// protocol version the client negotiated. A Reply never owns its bytes: Bytes may alias store
// memory that is never mutated in place, so building a reply for GET does not allocate.
type Reply struct {
	Kind  Kind
	Int   int64
	Float float64
	Bytes []byte  // bulk/verbatim payload when set
	Str   string  // status/error text, or bulk payload when Bytes is nil
	Elems []Reply // array, map, set and push elements
	// Later, when set, is a reply still being computed (a pipelined store call): the connection
	// goes on executing the commands it has already received and asks Later for the reply, in
	// order, before it writes.
	Later Later
}

// Flusher is implemented by Later replies whose work starts only when flushed (requests
// buffered for a cluster peer). A connection flushes all its Later replies before it waits for
// the first, so that they run at the same time.
type Flusher interface {
	Flush()
}

// Notifier is implemented by Later replies that can say when they are ready, so that an event
// loop can go on serving other connections instead of blocking in Reply. Notify arranges for fn
// to be called once, from any goroutine, when Reply will no longer block, and reports true; it
// reports false, and never calls fn, when Reply is ready already. A Later that is not a Notifier
// is waited for on a goroutine.
type Notifier interface {
	Notify(fn func()) bool
}

// LoopNotifier is a Notifier that calls its function on the event loop's own goroutine (its work
// is driven by the loop, see Loop.Watch): the loop then resumes the connection directly, with no
// wake-up.
type LoopNotifier interface {
	Notifier
	// NotifiesOnLoop marks the interface; it reports true.
	NotifiesOnLoop() bool
}

// Later produces a reply that was not ready when its handler returned.
type Later interface {
	// Reply blocks until the reply is ready and returns it. It is called once, on the
	// connection's goroutine.
	Reply() Reply
}

// Common replies.
var (
	OK       = Reply{Kind: KindStatus, Str: "OK"}
	Nil      = Reply{Kind: KindNil}
	NilArray = Reply{Kind: KindNilArray}
	Zero     = Reply{Kind: KindInt, Int: 0}
	One      = Reply{Kind: KindInt, Int: 1}
)

// Status returns a simple-string reply.
func Status(s string) Reply { return Reply{Kind: KindStatus, Str: s} }

// Error returns an error reply; s is the whole text after '-', e.g. "ERR syntax error".
func Error(s string) Reply { return Reply{Kind: KindError, Str: s} }

// Int returns an integer reply.
func Int(n int64) Reply { return Reply{Kind: KindInt, Int: n} }

// Bool returns 1 or 0, as Redis does for predicate commands.
func Bool(b bool) Reply {
	if b {
		return One
	}
	return Zero
}

// Bulk returns a bulk-string reply that aliases b; a nil b is still an empty string.
func Bulk(b []byte) Reply {
	if b == nil {
		b = []byte{}
	}
	return Reply{Kind: KindBulk, Bytes: b}
}

// BulkString returns a bulk-string reply holding s.
func BulkString(s string) Reply { return Reply{Kind: KindBulk, Str: s} }

// Double returns a RESP3 double (a bulk string in RESP2).
func Double(f float64) Reply { return Reply{Kind: KindDouble, Float: f} }

// Verbatim returns a RESP3 verbatim text (a bulk string in RESP2), as INFO and CLIENT LIST reply.
func Verbatim(s string) Reply { return Reply{Kind: KindVerbatim, Str: s} }

// Array returns an array reply of elems.
func Array(elems []Reply) Reply { return Reply{Kind: KindArray, Elems: elems} }

// Map returns a map reply; kv holds keys and values alternately.
func Map(kv []Reply) Reply { return Reply{Kind: KindMap, Elems: kv} }

// Set returns a RESP3 set reply (an array in RESP2).
func Set(elems []Reply) Reply { return Reply{Kind: KindSet, Elems: elems} }

// Seq returns several replies that one command writes one after another, as SUBSCRIBE does
// for each channel it names.
func Seq(replies []Reply) Reply { return Reply{Kind: KindSeq, Elems: replies} }

// Push returns a RESP3 push reply (an array in RESP2).
func Push(elems []Reply) Reply { return Reply{Kind: KindPush, Elems: elems} }

// BulkStrings returns an array of bulk strings.
func BulkStrings(ss ...string) Reply {
	elems := make([]Reply, len(ss))
	for i, s := range ss {
		elems[i] = BulkString(s)
	}
	return Array(elems)
}

// IsError reports whether r is an error reply.
func (r Reply) IsError() bool { return r.Kind == KindError }

// Text is the payload of a string reply (status, error, bulk, verbatim), whichever field holds
// it.
func (r Reply) Text() string {
	if r.Bytes != nil {
		return string(r.Bytes)
	}
	return r.Str
}

// Append appends r to dst encoded for protocol version proto (2 or 3).
func Append(dst []byte, r Reply, proto int) []byte {
	switch r.Kind {
	case KindNone:
		return dst
	case KindSeq:
		for _, e := range r.Elems {
			dst = Append(dst, e, proto)
		}
		return dst
	case KindNil:
		if proto >= 3 {
			return append(dst, '_', '\r', '\n')
		}
		return redcon.AppendNull(dst)
	case KindNilArray:
		if proto >= 3 {
			return append(dst, '_', '\r', '\n')
		}
		return append(dst, '*', '-', '1', '\r', '\n')
	case KindStatus:
		return redcon.AppendString(dst, r.Str)
	case KindError:
		return redcon.AppendError(dst, r.Str)
	case KindInt:
		return redcon.AppendInt(dst, r.Int)
	case KindBulk:
		if r.Bytes != nil {
			return redcon.AppendBulk(dst, r.Bytes)
		}
		return redcon.AppendBulkString(dst, r.Str)
	case KindDouble:
		if proto >= 3 {
			dst = append(dst, ',')
			dst = AppendFloat(dst, r.Float)
			return append(dst, '\r', '\n')
		}
		var tmp [32]byte
		return redcon.AppendBulk(dst, AppendFloat(tmp[:0], r.Float))
	case KindVerbatim:
		if proto >= 3 {
			dst = append(dst, '=')
			dst = strconv.AppendInt(dst, int64(len(r.Str)+4), 10)
			dst = append(dst, "\r\ntxt:"...)
			dst = append(dst, r.Str...)
			return append(dst, '\r', '\n')
		}
		return redcon.AppendBulkString(dst, r.Str)
	case KindMap:
		if proto >= 3 {
			dst = append(dst, '%')
			dst = strconv.AppendInt(dst, int64(len(r.Elems)/2), 10)
			dst = append(dst, '\r', '\n')
		} else {
			dst = redcon.AppendArray(dst, len(r.Elems))
		}
	case KindSet:
		if proto >= 3 {
			dst = append(dst, '~')
			dst = strconv.AppendInt(dst, int64(len(r.Elems)), 10)
			dst = append(dst, '\r', '\n')
		} else {
			dst = redcon.AppendArray(dst, len(r.Elems))
		}
	case KindPush:
		if proto >= 3 {
			dst = append(dst, '>')
			dst = strconv.AppendInt(dst, int64(len(r.Elems)), 10)
			dst = append(dst, '\r', '\n')
		} else {
			dst = redcon.AppendArray(dst, len(r.Elems))
		}
	default: // KindArray
		dst = redcon.AppendArray(dst, len(r.Elems))
	}
	for _, e := range r.Elems {
		dst = Append(dst, e, proto)
	}
	return dst
}

// AppendFloat formats f the way Redis formats doubles in replies (%.17g, with "inf"/"-inf"/"nan").
func AppendFloat(dst []byte, f float64) []byte {
	switch {
	case f != f:
		return append(dst, "nan"...)
	case f > 1.7976931348623157e308:
		return append(dst, "inf"...)
	case f < -1.7976931348623157e308:
		return append(dst, "-inf"...)
	}
	return strconv.AppendFloat(dst, f, 'g', 17, 64)
}

// AppendCommand appends args encoded as a RESP multibulk request, the form clients send (peer
// forwarding, test clients).
func AppendCommand(dst []byte, args ...[]byte) []byte {
	dst = redcon.AppendArray(dst, len(args))
	for _, a := range args {
		dst = redcon.AppendBulk(dst, a)
	}
	return dst
}
