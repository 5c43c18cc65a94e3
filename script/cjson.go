package script

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The cjson library Redis's scripts have (lua-cjson 2.1 with Redis's defaults): cjson.encode,
// cjson.decode and cjson.null. Encoding follows lua-cjson: numbers as %.14g, "/" escaped, a
// table with only positive integer keys (not excessively sparse) an array, any other an object
// (an empty table "{}"). Objects' keys are written sorted; lua-cjson writes them in the table's
// own order, which no client can rely on. Decoding is encoding/json's, so its error texts
// differ from lua-cjson's.

// maxJSONDepth is lua-cjson's default nesting limit, for encoding and decoding.
const maxJSONDepth = 1000

// openCJSON builds the cjson table; null is the sentinel cjson.null, a userdata.
func openCJSON(L *lua.LState) *lua.LTable {
	null := L.NewUserData()
	t := L.NewTable()
	t.RawSetString("null", null)
	t.RawSetString("encode", L.NewFunction(func(L *lua.LState) int {
		if L.GetTop() != 1 {
			L.RaiseError("bad argument #1 to 'encode' (expected 1 argument)")
		}
		var b bytes.Buffer
		if err := encodeJSON(&b, L.Get(1), null, 0); err != nil {
			L.RaiseError("%s", err.Error())
		}
		L.Push(lua.LString(b.String()))
		return 1
	}))
	t.RawSetString("decode", L.NewFunction(func(L *lua.LState) int {
		d := json.NewDecoder(strings.NewReader(L.CheckString(1)))
		d.UseNumber()
		v, err := decodeJSON(L, d, null, 0)
		if err == nil {
			if _, extra := d.Token(); extra != io.EOF {
				err = Error("Expected the end but found more data")
			}
		}
		if err != nil {
			L.RaiseError("%s", err.Error())
		}
		L.Push(v)
		return 1
	}))
	return t
}

// encodeJSON appends v's JSON to b.
func encodeJSON(b *bytes.Buffer, v lua.LValue, null *lua.LUserData, depth int) error {
	switch v := v.(type) {
	case *lua.LNilType:
		b.WriteString("null")
	case lua.LBool:
		b.WriteString(strconv.FormatBool(bool(v)))
	case lua.LNumber:
		return encodeNumber(b, float64(v))
	case lua.LString:
		encodeString(b, string(v))
	case *lua.LUserData:
		if v != null {
			return Error("Cannot serialise userdata: type not supported")
		}
		b.WriteString("null")
	case *lua.LTable:
		if depth >= maxJSONDepth {
			return Error("Cannot serialise, excessive nesting (" + strconv.Itoa(depth+1) + ")")
		}
		return encodeTable(b, v, null, depth+1)
	default:
		return Error("Cannot serialise " + v.Type().String() + ": type not supported")
	}
	return nil
}

func encodeNumber(b *bytes.Buffer, f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return Error("Cannot serialise number: must not be NaN or Inf")
	}
	b.WriteString(strconv.FormatFloat(f, 'g', 14, 64))
	return nil
}

// encodeTable writes t as an array when its keys are the integers 1…n (lua-cjson's sparse
// rule: more than 10 and over twice the number of items is an error), else as an object.
func encodeTable(b *bytes.Buffer, t *lua.LTable, null *lua.LUserData, depth int) error {
	maxIndex, items, array := 0, 0, true
	t.ForEach(func(k, _ lua.LValue) {
		items++
		n, ok := k.(lua.LNumber)
		if !ok || float64(n) != math.Floor(float64(n)) || n < 1 {
			array = false
			return
		}
		maxIndex = max(maxIndex, int(min(float64(n), math.MaxInt32)))
	})
	if array && items > 0 {
		if maxIndex > 10 && maxIndex > items*2 {
			return Error("Cannot serialise table: excessively sparse array")
		}
		b.WriteByte('[')
		for i := 1; i <= maxIndex; i++ {
			if i > 1 {
				b.WriteByte(',')
			}
			if err := encodeJSON(b, t.RawGetInt(i), null, depth); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	}
	type pair struct {
		key string
		val lua.LValue
	}
	var pairs []pair
	var err error
	t.ForEach(func(k, v lua.LValue) {
		switch k := k.(type) {
		case lua.LString:
			pairs = append(pairs, pair{string(k), v})
		case lua.LNumber:
			var kb bytes.Buffer
			if e := encodeNumber(&kb, float64(k)); e != nil {
				err = e
			}
			pairs = append(pairs, pair{kb.String(), v})
		default:
			err = Error("Cannot serialise table: table key must be a number or string")
		}
	})
	if err != nil {
		return err
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].key < pairs[j].key })
	b.WriteByte('{')
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte(',')
		}
		encodeString(b, p.key)
		b.WriteByte(':')
		if err := encodeJSON(b, p.val, null, depth); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

// encodeString writes s as a JSON string the way lua-cjson escapes it: quotes, backslash, "/",
// the named control characters, and the others (and DEL) as \u00XX; other bytes as they are.
func encodeString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '/':
			b.WriteString(`\/`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c == 0x7f {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

// decodeJSON reads one JSON value from d as a Lua value: objects and arrays as tables, null as
// the null sentinel.
func decodeJSON(L *lua.LState, d *json.Decoder, null *lua.LUserData, depth int) (lua.LValue, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, Error("Expected value but found invalid token: " + err.Error())
	}
	switch tok := tok.(type) {
	case nil:
		return null, nil
	case bool:
		return lua.LBool(tok), nil
	case json.Number:
		f, err := strconv.ParseFloat(string(tok), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, err
		}
		return lua.LNumber(f), nil
	case string:
		return lua.LString(tok), nil
	case json.Delim:
		if depth >= maxJSONDepth {
			return nil, Error("Found too many nested data structures (" + strconv.Itoa(depth+1) + ")")
		}
		t := L.NewTable()
		if tok == '[' {
			for d.More() {
				v, err := decodeJSON(L, d, null, depth+1)
				if err != nil {
					return nil, err
				}
				t.Append(v)
			}
		} else {
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeJSON(L, d, null, depth+1)
				if err != nil {
					return nil, err
				}
				t.RawSetString(k.(string), v)
			}
		}
		if _, err := d.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return t, nil
	}
	return nil, Error("Expected value but found invalid token")
}
