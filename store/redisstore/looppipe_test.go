package redisstore

import (
	"bufio"
	"bytes"
	"testing"
)

func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		in   string
		typ  byte
		val  string
		n    int
		fail bool
	}{
		{in: "+OK\r\n", typ: '+', val: "OK", n: 5},
		{in: "+OK\r\n$1\r\n", typ: '+', val: "OK", n: 5},
		{in: "-ERR x\r\n", typ: '-', val: "ERR x", n: 8},
		{in: ":12\r\n", typ: ':', val: "12", n: 5},
		{in: "$3\r\nabc\r\n", typ: '$', val: "abc", n: 9},
		{in: "$0\r\n\r\n", typ: '$', val: "", n: 6},
		{in: "$-1\r\n", typ: '_', n: 5},
		{in: "*-1\r\n", typ: '_', n: 5},
		{in: "*2\r\n$1\r\na\r\n:1\r\n", typ: '*', n: 15},
		{in: "$3\r\nab"},          // incomplete
		{in: "$3\r\nabc\r"},       // incomplete
		{in: "+OK"},               // incomplete
		{in: "*2\r\n$1\r\na\r\n"}, // incomplete
		{in: "$3\r\nabcd\r\n", fail: true},
		{in: "\r\n", fail: true},
		{in: "?x\r\n", fail: true},
		{in: "$x\r\n", fail: true},
		{in: "$999999999999\r\n", fail: true},
	} {
		typ, val, n, err := parseReply([]byte(tc.in))
		if (err != nil) != tc.fail || typ != tc.typ || string(val) != tc.val || n != tc.n {
			t.Errorf("parseReply(%q) = %q, %q, %d, %v; want %q, %q, %d, fail %v", tc.in, typ, val, n, err, tc.typ, tc.val, tc.n, tc.fail)
		}
	}
}

// FuzzParseReply checks the event loop's reply parser against the pipe's bufio one: what the
// former takes whole, the latter reads the same, and no prefix of it parses as whole.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "$3\r\nabc\r\n", "$-1\r\n", "-ERR x\r\n", ":1\r\n", "*2\r\n$1\r\na\r\n:1\r\n", "*1\r\n*1\r\n+x\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, val, n, err := parseReply(b)
		if err != nil || n == 0 {
			return
		}
		if n > len(b) {
			t.Fatalf("took %d of %d bytes", n, len(b))
		}
		r := bytes.NewReader(b)
		br := bufio.NewReaderSize(r, 64<<10)
		typ2, val2, err2 := readReply(br)
		if err2 != nil || typ2 != typ || (typ != '*' && !bytes.Equal(val, val2)) {
			t.Fatalf("parseReply %q %q, readReply %q %q %v", typ, val, typ2, val2, err2)
		}
		if took := len(b) - r.Len() - br.Buffered(); took != n {
			t.Fatalf("parseReply took %d bytes, readReply %d", n, took)
		}
		for i := range n {
			if _, _, m, err := parseReply(b[:i]); m != 0 || err != nil {
				t.Fatalf("prefix %q of %q: took %d, %v", b[:i], b[:n], m, err)
			}
		}
	})
}
