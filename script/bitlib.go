package script

import (
	"math"
	"math/bits"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The bit library Redis's scripts have (LuaBitOp 1.0): bitwise operations on 32-bit integers.
// Every argument is first normalised as LuaBitOp does (tobit): rounded to the nearest integer
// and taken modulo 2^32; every result is a signed 32-bit number.

// tobit normalises a number to a signed 32-bit integer.
func tobit(f float64) int32 {
	f = math.RoundToEven(f)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return int32(uint32(int64(math.Mod(f, 1<<32))))
}

// openBit builds the bit table.
func openBit(L *lua.LState) *lua.LTable {
	arg := func(L *lua.LState, i int) int32 { return tobit(float64(L.CheckNumber(i))) }
	push := func(L *lua.LState, v int32) int { L.Push(lua.LNumber(v)); return 1 }
	fold := func(op func(a, b int32) int32) lua.LGFunction {
		return func(L *lua.LState) int {
			v := arg(L, 1)
			for i := 2; i <= L.GetTop(); i++ {
				v = op(v, arg(L, i))
			}
			return push(L, v)
		}
	}
	shift := func(op func(x uint32, n uint) uint32) lua.LGFunction {
		return func(L *lua.LState) int {
			return push(L, int32(op(uint32(arg(L, 1)), uint(arg(L, 2))&31)))
		}
	}
	fns := map[string]lua.LGFunction{
		"tobit":   func(L *lua.LState) int { return push(L, arg(L, 1)) },
		"bnot":    func(L *lua.LState) int { return push(L, ^arg(L, 1)) },
		"band":    fold(func(a, b int32) int32 { return a & b }),
		"bor":     fold(func(a, b int32) int32 { return a | b }),
		"bxor":    fold(func(a, b int32) int32 { return a ^ b }),
		"lshift":  shift(func(x uint32, n uint) uint32 { return x << n }),
		"rshift":  shift(func(x uint32, n uint) uint32 { return x >> n }),
		"arshift": shift(func(x uint32, n uint) uint32 { return uint32(int32(x) >> n) }),
		"rol":     shift(func(x uint32, n uint) uint32 { return bits.RotateLeft32(x, int(n)) }),
		"ror":     shift(func(x uint32, n uint) uint32 { return bits.RotateLeft32(x, -int(n)) }),
		"bswap":   func(L *lua.LState) int { return push(L, int32(bits.ReverseBytes32(uint32(arg(L, 1))))) },
		"tohex": func(L *lua.LState) int {
			x := uint32(arg(L, 1))
			n := int32(8)
			if L.GetTop() >= 2 {
				n = arg(L, 2)
			}
			digits := "0123456789abcdef"
			if n < 0 {
				n, digits = -n, strings.ToUpper(digits)
			}
			n = min(n, 8)
			out := make([]byte, n)
			for i := int(n) - 1; i >= 0; i-- {
				out[i] = digits[x&15]
				x >>= 4
			}
			L.Push(lua.LString(out))
			return 1
		},
	}
	t := L.NewTable()
	for name, fn := range fns {
		t.RawSetString(name, L.NewFunction(fn))
	}
	return t
}
