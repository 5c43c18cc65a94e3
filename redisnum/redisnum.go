// Package redisnum parses and formats numbers exactly as Redis does, so that INCR, INCRBYFLOAT
// and every integer argument accept and produce the same strings in Vela as in Redis.
package redisnum

import (
	"math/big"
	"strconv"
	"strings"
)

// ParseInt parses a decimal integer as strictly as Redis's string2ll: an optional '-', no '+',
// no leading zeros, no spaces, no overflow. It reports false for anything else.
func ParseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := false
	if b[0] == '-' {
		neg = true
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if b[0] == '0' {
		return 0, len(b) == 1 && !neg
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// Redis does float arithmetic for INCRBYFLOAT in x87 long double: a 64-bit mantissa and a 15-bit
// exponent. big.Float with 64 bits of precision and round-to-nearest-even reproduces its results.
const (
	longDoublePrec   = 64
	longDoubleMaxExp = 16384  // values at or above 2^16384 overflow
	longDoubleMinExp = -16444 // smallest denormal is 2^-16445
)

// LongDouble is a value of Redis's long double type.
type LongDouble struct{ f big.Float }

// ParseLongDouble parses b as Redis's string2ld does (strtold, whole string, no leading space,
// no NaN, no overflow or underflow to zero). Infinity is accepted, as in Redis.
func ParseLongDouble(b []byte) (LongDouble, bool) {
	var ld LongDouble
	if len(b) == 0 || len(b) >= 5*1024 {
		return ld, false
	}
	s := string(b)
	if strings.ContainsAny(s, "_ \t\r\n\v\f") {
		return ld, false
	}
	switch strings.ToLower(strings.TrimLeft(s, "+-")) {
	case "inf", "infinity":
		ld.f.SetInf(s[0] == '-')
		return ld, true
	case "nan":
		return ld, false
	}
	if body := strings.ToLower(strings.TrimLeft(s, "+-")); strings.HasPrefix(body, "0b") || strings.HasPrefix(body, "0o") {
		return ld, false // big.Float knows these prefixes, strtold does not
	}
	ld.f.SetPrec(longDoublePrec).SetMode(big.ToNearestEven)
	if _, _, err := ld.f.Parse(s, 0); err != nil {
		return ld, false
	}
	if ld.f.Sign() != 0 {
		exp := ld.f.MantExp(nil)
		if exp > longDoubleMaxExp || exp < longDoubleMinExp {
			return ld, false // strtold sets ERANGE
		}
	}
	return ld, true
}

// IsInf reports whether x is infinite.
func (x LongDouble) IsInf() bool { return x.f.IsInf() }

// Add returns x+y rounded to long double precision; ok is false when the result is infinite or
// overflows (Redis's "increment would produce NaN or Infinity"; +Inf + -Inf is NaN).
func (x LongDouble) Add(y LongDouble) (sum LongDouble, ok bool) {
	if x.f.IsInf() || y.f.IsInf() {
		return sum, false
	}
	sum.f.SetPrec(longDoublePrec).SetMode(big.ToNearestEven)
	sum.f.Add(&x.f, &y.f)
	if sum.f.Sign() != 0 && sum.f.MantExp(nil) > longDoubleMaxExp {
		return sum, false
	}
	return sum, true
}

// AppendHuman appends x the way Redis's ld2string(LD_STR_HUMAN) formats it: "%.17Lf" with
// trailing zeros and a trailing point removed, and "-0" written as "0".
func (x LongDouble) AppendHuman(dst []byte) []byte {
	s := x.f.Text('f', 17)
	if strings.IndexByte(s, '.') >= 0 {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return append(dst, s...)
}

// FromInt returns n as a LongDouble.
func FromInt(n int64) LongDouble {
	var ld LongDouble
	ld.f.SetPrec(longDoublePrec).SetMode(big.ToNearestEven).SetInt64(n)
	return ld
}

// AppendInt appends n in decimal.
func AppendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }
