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
// exponent. big.Float with 64 bits of precision and round-to-nearest-even reproduces its results,
// provided every value is rounded once from its exact value, as glibc's strtold does.
const (
	longDoublePrec   = 64
	longDoubleMaxExp = 16384  // values at or above 2^16384 overflow
	longDoubleMinExp = -16444 // the smallest denormal, 2^-16445, is 0.5 × 2^-16444
	maxLongDoubleLen = 5 * 1024
	// A decimal number in [10^(top-1), 10^top) with top beyond these bounds overflows (LDBL_MAX
	// is about 1.19e4932) or rounds to zero (the smallest denormal is about 3.6e-4951) whatever
	// its digits, so its exact value, which could be enormous ("1e999999999"), is never built.
	maxDecimalTop = 4934
	minDecimalTop = -4952
)

// LongDouble is a value of Redis's long double type.
type LongDouble struct{ f big.Float }

// ParseLongDouble parses b as Redis's string2ld does: strtold must consume the whole string, and
// leading blanks, NaN, overflow and underflow to zero are rejected. strtold's grammar is an
// optional sign, then "inf", "infinity", a decimal number with an optional 'e' exponent, or a
// "0x" hexadecimal number with an optional 'p' exponent; case does not matter. Infinity is
// accepted, as in Redis. The value is rounded once, to nearest-even, from the exact number.
func ParseLongDouble(b []byte) (LongDouble, bool) {
	var ld LongDouble
	if len(b) == 0 || len(b) >= maxLongDoubleLen {
		return ld, false
	}
	neg := false
	s := b
	if s[0] == '+' || s[0] == '-' {
		neg = s[0] == '-'
		s = s[1:]
	}
	switch {
	case equalFoldASCII(s, "inf"), equalFoldASCII(s, "infinity"):
		ld.f.SetInf(neg)
		return ld, true
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		if !ld.parseHex(s[2:]) {
			return ld, false
		}
	default:
		if !ld.parseDecimal(s) {
			return ld, false
		}
	}
	if ld.f.Sign() != 0 {
		exp := ld.f.MantExp(nil)
		if exp > longDoubleMaxExp {
			return ld, false // strtold: HUGE_VAL and ERANGE
		}
		if exp < longDoubleMinExp-1 || (exp == longDoubleMinExp-1 && isHalf(&ld.f)) {
			return ld, false // rounds to zero (2^-16446 is a tie, which rounds to even zero)
		}
	}
	if neg {
		ld.f.Neg(&ld.f)
	}
	return ld, true
}

// isHalf reports whether f's mantissa is exactly 0.5.
func isHalf(f *big.Float) bool {
	var m big.Float
	f.MantExp(&m)
	return m.Abs(&m).Cmp(big.NewFloat(0.5)) == 0
}

// digits scans s[i:] for digits of the given base and returns them with the index after them.
func digits(s []byte, i int, hex bool) ([]byte, int) {
	start := i
	for i < len(s) && (isDigit(s[i]) || (hex && isHexLetter(s[i]))) {
		i++
	}
	return s[start:i], i
}

// mantissa scans "int[.frac]" and returns the digits without the point and the number of
// fraction digits; ok is false when there is no digit at all.
func mantissa(s []byte, hex bool) (all []byte, frac, next int, ok bool) {
	ip, i := digits(s, 0, hex)
	all = append(all, ip...)
	if i < len(s) && s[i] == '.' {
		var fp []byte
		fp, i = digits(s, i+1, hex)
		all = append(all, fp...)
		frac = len(fp)
	}
	return all, frac, i, len(all) > 0
}

// exponent scans an optional exponent introduced by marker ('e' or 'p'): it reports the value
// (saturated far beyond any meaningful range) and ok false when the marker is present without
// digits, which strtold would leave unconsumed.
func exponent(s []byte, i int, marker byte) (exp int64, next int, ok bool) {
	if i == len(s) || (s[i]|0x20) != marker {
		return 0, i, true
	}
	i++
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	ds, i := digits(s, i, false)
	if len(ds) == 0 {
		return 0, i, false
	}
	for _, d := range ds {
		if exp < 1<<40 {
			exp = exp*10 + int64(d-'0')
		}
	}
	if neg {
		exp = -exp
	}
	return exp, i, true
}

func (x *LongDouble) parseDecimal(s []byte) bool {
	ds, frac, i, ok := mantissa(s, false)
	if !ok {
		return false
	}
	exp, i, ok := exponent(s, i, 'e')
	if !ok || i != len(s) {
		return false
	}
	for len(ds) > 0 && ds[0] == '0' {
		ds = ds[1:]
	}
	x.f.SetPrec(longDoublePrec).SetMode(big.ToNearestEven)
	if len(ds) == 0 {
		x.f.SetInt64(0)
		return true
	}
	exp -= int64(frac)
	// The value lies in [10^(exp+len(ds)-1), 10^(exp+len(ds))).
	if top := exp + int64(len(ds)); top > maxDecimalTop || top < minDecimalTop {
		return false
	}
	var m big.Int
	m.SetString(string(ds), 10)
	if exp >= 0 {
		var p big.Int
		m.Mul(&m, p.Exp(big.NewInt(10), big.NewInt(exp), nil))
		x.f.SetInt(&m)
		return true
	}
	var p big.Int
	p.Exp(big.NewInt(10), big.NewInt(-exp), nil)
	var num, den big.Float
	num.SetInt(&m) // exact: the precision becomes the integer's bit length
	den.SetInt(&p)
	x.f.Quo(&num, &den) // one correctly rounded division
	return true
}

func (x *LongDouble) parseHex(s []byte) bool {
	ds, frac, i, ok := mantissa(s, true)
	if !ok {
		return false
	}
	exp, i, ok := exponent(s, i, 'p')
	if !ok || i != len(s) {
		return false
	}
	var m big.Int
	m.SetString(string(ds), 16)
	exp -= 4 * int64(frac)
	x.f.SetPrec(longDoublePrec).SetMode(big.ToNearestEven)
	if m.Sign() == 0 {
		x.f.SetInt64(0)
		return true
	}
	if top := exp + int64(m.BitLen()); top > longDoubleMaxExp+8 || top < longDoubleMinExp-8 {
		return false
	}
	x.f.SetInt(&m) // rounds once to 64 bits; scaling by a power of two is exact
	x.f.SetMantExp(&x.f, int(exp))
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHexLetter(c byte) bool { return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') }

// equalFoldASCII reports whether b equals the lower-case word w ignoring ASCII case.
func equalFoldASCII(b []byte, w string) bool {
	if len(b) != len(w) {
		return false
	}
	for i := range b {
		if b[i]|0x20 != w[i] {
			return false
		}
	}
	return true
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

// Float64 returns x rounded to the nearest float64, as Redis's string2d would have read the same
// text.
func (x LongDouble) Float64() float64 {
	f, _ := x.f.Float64()
	return f
}
