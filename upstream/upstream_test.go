package upstream

import (
	"bytes"
	"testing"
)

func TestReplyLen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		fail bool
	}{
		{in: "+OK\r\n", n: 5},
		{in: "+OK\r\n+OK\r\n", n: 5},
		{in: "-ERR x\r\n", n: 8},
		{in: ":-12\r\n", n: 6},
		{in: "$3\r\nabc\r\n", n: 9},
		{in: "$-1\r\n", n: 5},
		{in: "_\r\n", n: 3},
		{in: ",1.5\r\n", n: 6},
		{in: "#t\r\n", n: 4},
		{in: "(123\r\n", n: 6},
		{in: "!3\r\nerr\r\n", n: 9},
		{in: "=7\r\ntxt:abc\r\n", n: 13},
		{in: "*2\r\n$1\r\na\r\n:1\r\n", n: 15},
		{in: "*-1\r\n", n: 5},
		{in: "%1\r\n+k\r\n+v\r\n", n: 12},
		{in: "~1\r\n+a\r\n", n: 8},
		{in: ">2\r\n+message\r\n+x\r\n", n: 18},
		{in: "|1\r\n+k\r\n+v\r\n+OK\r\n", n: 17},
		{in: "$3\r\nab"},
		{in: "$3\r\nabc\r"},
		{in: "+OK"},
		{in: "+OK\r"},
		{in: "*2\r\n$1\r\na\r\n"},
		{in: "%1\r\n+k\r\n"},
		{in: "$3\r\nabcd\r\n", fail: true},
		{in: "+OK\n", fail: true},
		{in: "\r\n", fail: true},
		{in: "?x\r\n", fail: true},
		{in: "$x\r\n", fail: true},
		{in: "$-2\r\n", fail: true},
		{in: "$99999999999\r\n", fail: true},
		{in: "*99999999\r\n", fail: true},
		{in: string(bytes.Repeat([]byte("*1\r\n"), maxDepth+2)) + "+x\r\n", fail: true},
	} {
		n, err := ReplyLen([]byte(tc.in))
		if n != tc.n || (err != nil) != tc.fail {
			t.Errorf("ReplyLen(%q) = %d, %v; want %d, fail %v", tc.in, n, err, tc.n, tc.fail)
		}
	}
}

// FuzzReplyLen checks that a reply ReplyLen frames is framed the same from any longer input and
// that no shorter prefix is taken for a whole reply, and that it never panics.
func FuzzReplyLen(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "$3\r\nabc\r\n", "*2\r\n$1\r\na\r\n:1\r\n", "%1\r\n+k\r\n+v\r\n", "|1\r\n+k\r\n+v\r\n+OK\r\n"} {
		f.Add([]byte(s), []byte("+more\r\n"))
	}
	f.Fuzz(func(t *testing.T, b, tail []byte) {
		n, err := ReplyLen(b)
		if err != nil || n == 0 {
			return
		}
		if n > len(b) {
			t.Fatalf("took %d of %d bytes", n, len(b))
		}
		if m, err := ReplyLen(append(b[:n:n], tail...)); m != n || err != nil {
			t.Fatalf("with more input after it: %d, %v; want %d", m, err, n)
		}
		for i := range n {
			if m, err := ReplyLen(b[:i]); m != 0 || err != nil {
				t.Fatalf("prefix %q of %q: %d, %v", b[:i], b[:n], m, err)
			}
		}
		if !bytes.HasSuffix(b[:n], []byte("\r\n")) { // a whole reply is whole lines
			t.Fatalf("reply %q does not end in CRLF", b[:n])
		}
	})
}
