package redisstore

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/vela-cache/vela/upstream"
)

func TestDecodeReply(t *testing.T) {
	for _, tc := range []struct {
		in  string
		typ byte
		val string
	}{
		{in: "+OK\r\n", typ: '+', val: "OK"},
		{in: "-ERR x\r\n", typ: '-', val: "ERR x"},
		{in: ":12\r\n", typ: ':', val: "12"},
		{in: "$3\r\nabc\r\n", typ: '$', val: "abc"},
		{in: "$4\r\na\r\nb\r\n", typ: '$', val: "a\r\nb"},
		{in: "$0\r\n\r\n", typ: '$', val: ""},
		{in: "$-1\r\n", typ: '_'},
		{in: "*-1\r\n", typ: '_'},
		{in: "_\r\n", typ: '_'},
		{in: "*2\r\n$1\r\na\r\n:1\r\n", typ: '*'},
	} {
		typ, val := decodeReply([]byte(tc.in))
		if typ != tc.typ || string(val) != tc.val {
			t.Errorf("decodeReply(%q) = %q, %q; want %q, %q", tc.in, typ, val, tc.typ, tc.val)
		}
	}
}

// FuzzDecodeReply checks the event loop's path (upstream.ReplyLen frames, decodeReply reads)
// against the pipe's bufio reader: every reply the former takes, the latter reads the same and
// takes as many bytes.
func FuzzDecodeReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "$3\r\nabc\r\n", "$-1\r\n", "-ERR x\r\n", ":1\r\n", "*2\r\n$1\r\na\r\n:1\r\n", "*1\r\n*1\r\n+x\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := upstream.ReplyLen(b)
		if err != nil || n == 0 || !bytes.ContainsAny(b[:1], "+-:$*") { // the pipe speaks RESP2
			return
		}
		typ, val := decodeReply(b[:n])
		r := bytes.NewReader(b)
		br := bufio.NewReaderSize(r, 64<<10)
		typ2, val2, err2 := readReply(br)
		if err2 != nil && typ == '*' {
			return // an array holding RESP3 elements, which the RESP2 reader refuses (Redis sends none)
		}
		if err2 != nil || typ2 != typ || (typ != '*' && !bytes.Equal(val, val2)) {
			t.Fatalf("decodeReply %q %q, readReply %q %q %v", typ, val, typ2, val2, err2)
		}
		if took := len(b) - r.Len() - br.Buffered(); took != n {
			t.Fatalf("ReplyLen took %d bytes, readReply %d", n, took)
		}
	})
}
