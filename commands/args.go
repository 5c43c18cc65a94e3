package commands

import (
	"math"

	"github.com/vela-cache/vela/redisnum"
	"github.com/vela-cache/vela/store"
)

// intArg parses an integer argument as Redis's getLongLongFromObject does.
func intArg(b []byte) (int64, error) {
	n, ok := redisnum.ParseInt(b)
	if !ok {
		return 0, ErrNotInteger
	}
	return n, nil
}

// expireUnit says how an expire argument is to be read.
type expireUnit uint8

const (
	unitNone expireUnit = iota
	unitEX              // relative seconds
	unitPX              // relative milliseconds
	unitEXAT            // absolute unix seconds
	unitPXAT            // absolute unix milliseconds
)

// writeOpts are the options SET and GETEX share (Redis's parseExtendedStringArgumentsOrReply).
type writeOpts struct {
	cond    store.Cond
	get     bool
	keepTTL bool
	persist bool
	unit    expireUnit
	expire  []byte   // the expire argument, validated later (Redis checks syntax first)
	tags    [][]byte // SET … TAGS t1 t2: everything after TAGS
	hasTags bool
}

// parseWriteOpts parses options from args (after the key, and for SET the value). forSet allows
// NX, XX, GET, KEEPTTL and TAGS; otherwise (GETEX) PERSIST is allowed instead.
func parseWriteOpts(args [][]byte, forSet bool) (writeOpts, error) {
	var o writeOpts
	for i := 0; i < len(args); i++ {
		a := args[i]
		hasNext := i+1 < len(args)
		expireSet := o.unit != unitNone
		switch {
		case forSet && equalFold(a, "nx") && o.cond&store.CondXX == 0:
			o.cond |= store.CondNX
		case forSet && equalFold(a, "xx") && o.cond&store.CondNX == 0:
			o.cond |= store.CondXX
		case forSet && equalFold(a, "get"):
			o.get = true
		case forSet && equalFold(a, "keepttl") && !o.persist && !expireSet:
			o.keepTTL = true
		case !forSet && equalFold(a, "persist") && !expireSet && !o.keepTTL:
			o.persist = true
		case equalFold(a, "ex") && hasNext && !o.keepTTL && !o.persist && (o.unit == unitNone || o.unit == unitEX):
			o.unit, o.expire = unitEX, args[i+1]
			i++
		case equalFold(a, "px") && hasNext && !o.keepTTL && !o.persist && (o.unit == unitNone || o.unit == unitPX):
			o.unit, o.expire = unitPX, args[i+1]
			i++
		case equalFold(a, "exat") && hasNext && !o.keepTTL && !o.persist && (o.unit == unitNone || o.unit == unitEXAT):
			o.unit, o.expire = unitEXAT, args[i+1]
			i++
		case equalFold(a, "pxat") && hasNext && !o.keepTTL && !o.persist && (o.unit == unitNone || o.unit == unitPXAT):
			o.unit, o.expire = unitPXAT, args[i+1]
			i++
		case forSet && equalFold(a, "tags") && hasNext:
			o.tags, o.hasTags = args[i+1:], true
			return o, nil
		default:
			return o, ErrSyntax
		}
	}
	return o, nil
}

// expireAt turns the expire argument into absolute unix milliseconds the way Redis's
// getExpireMillisecondsOrReply does: it must be a positive integer that does not overflow.
func (o *writeOpts) expireAt(cmd string) (int64, error) {
	ms, err := intArg(o.expire)
	if err != nil {
		return 0, err
	}
	if ms <= 0 || ((o.unit == unitEX || o.unit == unitEXAT) && ms > math.MaxInt64/1000) {
		return 0, invalidExpire(cmd)
	}
	if o.unit == unitEX || o.unit == unitEXAT {
		ms *= 1000
	}
	if o.unit == unitEX || o.unit == unitPX {
		t := now()
		if ms > math.MaxInt64-t {
			return 0, invalidExpire(cmd)
		}
		ms += t
	}
	return ms, nil
}
