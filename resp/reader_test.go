package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
)

// chunkReader returns data in pieces whose sizes cycle through sizes.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.sizes) > 0 {
		n = max(c.sizes[c.i%len(c.sizes)], 1)
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// parseAll runs a Reader over in, delivered in chunks of the given sizes, and returns every
// command (arguments quoted and joined) and how parsing ended. Every command is read twice, with
// Unread in between, which must give the same command.
func parseAll(t testing.TB, in []byte, sizes []int, limits Limits, requireAuth bool) ([]string, error) {
	rd := NewReader(&chunkReader{data: in, sizes: sizes}, limits)
	rd.SetRequireAuth(requireAuth)
	var cmds []string
	for steps := 0; ; steps++ {
		if steps > 4*len(in)+16 {
			t.Fatalf("reader made no progress on %q", in)
		}
		args, err := rd.Next()
		if err != nil {
			return cmds, err
		}
		if args == nil {
			if err := rd.Fill(); err != nil {
				return cmds, err
			}
			continue
		}
		if len(args) == 0 {
			t.Fatalf("Next returned an empty command for %q", in)
		}
		cmd := quoteArgs(args)
		// Unread puts it back: the next Next returns the same command.
		rd.Unread()
		again, err := rd.Next()
		if err != nil || quoteArgs(again) != cmd {
			t.Fatalf("after Unread of %s: %q, %v", cmd, again, err)
		}
		cmds = append(cmds, cmd)
	}
}

func quoteArgs(args [][]byte) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = strconv.Quote(string(a))
	}
	return strings.Join(parts, " ")
}

func TestReader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		limits Limits
		auth   bool
		want   []string // commands, each as quoted arguments
		err    string   // the protocol error, or "" for a clean EOF
	}{
		{name: "one multibulk", in: "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", want: []string{`"GET" "k"`}},
		{name: "pipelined", in: "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", want: []string{`"PING"`, `"PING"`}},
		{name: "binary bulk", in: "*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\x00\xff\r\n", want: []string{`"ECHO" "\r\n\x00\xff"`}},
		{name: "empty bulk", in: "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", want: []string{`"ECHO" ""`}},
		{name: "empty multibulk skipped", in: "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", want: []string{`"PING"`}},
		{name: "bulk terminator not checked", in: "*1\r\n$4\r\nPINGxx", want: []string{`"PING"`}},
		{name: "incomplete at EOF", in: "*2\r\n$3\r\nGET\r\n$1\r\n", err: ""},
		{name: "inline", in: "SET k v\r\nGET k\n", want: []string{`"SET" "k" "v"`, `"GET" "k"`}},
		{name: "inline empty lines skipped", in: "\r\n\n \r\nPING\r\n", want: []string{`"PING"`}},
		{name: "inline quotes", in: `SET "a b" 'c\'d' "\x41\n"` + "\r\n", want: []string{`"SET" "a b" "c'd" "A\n"`}},
		{name: "inline quote inside a word", in: "ECHO foo\"bar baz\"\r\n", want: []string{`"ECHO" "foobar baz"`}},
		{name: "inline vertical tab inside a word", in: "ECHO a\vb\r\n", want: []string{`"ECHO" "a\vb"`}},
		{name: "inline ends at NUL", in: "ECHO a\x00 b\r\n", want: []string{`"ECHO" "a"`}},
		{name: "inline unbalanced", in: "SET \"k\r\n", err: "Protocol error: unbalanced quotes in request"},
		{name: "inline closing quote then text", in: "SET 'k'v\r\n", err: "Protocol error: unbalanced quotes in request"},
		{name: "bad multibulk length", in: "*x\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "multibulk length over int32", in: "*2147483648\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "bad bulk length", in: "*1\r\n$-2\r\n", err: "Protocol error: invalid bulk length"},
		{name: "bulk over the limit", in: "*1\r\n$11\r\n", limits: Limits{MaxBulkLen: 10}, err: "Protocol error: invalid bulk length"},
		{name: "bulk at the limit", in: "*1\r\n$10\r\n0123456789\r\n", limits: Limits{MaxBulkLen: 10}, want: []string{`"0123456789"`}},
		{name: "expected dollar", in: "*1\r\n:1\r\n", err: "Protocol error: expected '$', got ':'"},
		{name: "unauthenticated multibulk", in: "*11\r\n", auth: true, err: "Protocol error: unauthenticated multibulk length"},
		{name: "unauthenticated bulk", in: "*1\r\n$16385\r\n", auth: true, err: "Protocol error: unauthenticated bulk length"},
		{name: "authenticated limits allow", in: "*1\r\n$16384\r\n" + strings.Repeat("x", 16384) + "\r\n", auth: true,
			want: []string{strconv.Quote(strings.Repeat("x", 16384))}},
		{name: "too big inline", in: strings.Repeat("x", maxInline+1), err: "Protocol error: too big inline request"},
		{name: "too big inline with its end", in: "ECHO " + strings.Repeat("x", maxInlineLine) + "\r\n", err: "Protocol error: too big inline request"},
		{name: "bulk length at the int64 limit", in: "*1\r\n$9223372036854775807\r\nabc", limits: Limits{MaxBulkLen: math.MaxInt64}},
		{name: "too big count", in: "*" + strings.Repeat("1", maxInline+1), err: "Protocol error: too big mbulk count string"},
		{name: "too big bulk count", in: "*1\r\n$" + strings.Repeat("1", maxInline+1), err: "Protocol error: too big bulk count string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, sizes := range [][]int{nil, {1}, {3, 1, 7}} {
				got, err := parseAll(t, []byte(tc.in), sizes, tc.limits, tc.auth)
				var pe *ProtocolError
				switch {
				case tc.err == "" && !errors.Is(err, io.EOF):
					t.Fatalf("chunks %v: ended with %v, want EOF", sizes, err)
				case tc.err != "" && (!errors.As(err, &pe) || pe.Error() != tc.err):
					t.Fatalf("chunks %v: ended with %v, want %q", sizes, err, tc.err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("chunks %v: commands %v, want %v", sizes, got, tc.want)
				}
			}
		})
	}
}

// TestReaderDoesNotAllocateAnnounced: announcing a huge bulk allocates nothing for it.
func TestReaderDoesNotAllocateAnnounced(t *testing.T) {
	rd := NewReader(strings.NewReader("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n0123456789"), Limits{})
	for {
		args, err := rd.Next()
		if err != nil || args != nil {
			break
		}
		if rd.Fill() != nil {
			break
		}
	}
	if len(rd.buf) > 2*initialBufSize {
		t.Fatalf("buffer grew to %d bytes for 40 bytes of input", len(rd.buf))
	}
}

// TestReaderKeepsRoomForLargeCommands: a client sending one large SET after another gets its
// buffer grown a few times in all, to fit the argument it announced, not grown by doublings and
// given back for every command; once it sends small commands again the room is given back.
func TestReaderKeepsRoomForLargeCommands(t *testing.T) {
	value := strings.Repeat("v", 100000)
	var in turns // one command per turn, as a client waiting for each reply sends them
	for range 20 {
		in = append(in, []byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n"+value+"\r\n"))
	}
	in = append(in, []byte("*1\r\n$4\r\nPING\r\n"))
	rd := NewReader(&in, Limits{})
	allocs, commands := 0, 0
	last := &rd.buf[0]
	for {
		args, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		if args != nil {
			commands++
			if commands <= 20 && string(args[2]) != value {
				t.Fatalf("command %d: the value did not survive", commands)
			}
			continue
		}
		if rd.Fill() != nil {
			break
		}
		if &rd.buf[0] != last {
			allocs, last = allocs+1, &rd.buf[0]
		}
	}
	if commands != 21 || allocs > 3 {
		t.Fatalf("%d commands read with %d buffer allocations, want 21 with at most 3", commands, allocs)
	}
	if rd.Fill(); len(rd.buf) > initialBufSize {
		t.Fatalf("after a small command the buffer keeps %d bytes", len(rd.buf))
	}
}

// turns is input that arrives in turns: a read returns bytes of the first turn only.
type turns [][]byte

func (t *turns) Read(p []byte) (int, error) {
	for len(*t) > 0 && len((*t)[0]) == 0 {
		*t = (*t)[1:]
	}
	if len(*t) == 0 {
		return 0, io.EOF
	}
	k := copy(p, (*t)[0])
	(*t)[0] = (*t)[0][k:]
	return k, nil
}

func TestReaderQueryBufferLimit(t *testing.T) {
	in := "*1\r\n$100000\r\n" + strings.Repeat("x", 100000)
	_, err := parseAll(t, []byte(in), nil, Limits{MaxQueryBuffer: 64 << 10}, false)
	if !errors.Is(err, ErrQueryBufferLimit) {
		t.Fatalf("got %v, want ErrQueryBufferLimit", err)
	}
}

// FuzzReader feeds arbitrary bytes in chunks: the reader must not panic or stall, must return
// non-empty commands, and must parse the same commands and end the same way however the input
// is chunked.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "PING\r\n", "SET \"a b\" 'c'\r\n", "*1\r\n$x\r\n", "*0\r\n",
		"*1\r\n$-1\r\n", "*2\r\n$3\r\nGET\r\n:1\r\n", "\r\n\r\nPING\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\x00\r\nx\r\n",
		"ECHO \"\\x41\\n\" a\"b c\"", "*1\r\n$3\r\nabc\r\n*1\r\n$3\r\nab", "*-5\r\n", "*1\r\n$0\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(1), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, a, b uint8) {
		if len(in) > maxInline {
			return // size-limit errors legitimately depend on how much has arrived
		}
		whole, werr := parseAll(t, in, nil, Limits{MaxBulkLen: 1 << 20}, false)
		chunked, cerr := parseAll(t, in, []int{int(a%16) + 1, int(b%16) + 1}, Limits{MaxBulkLen: 1 << 20}, false)
		if fmt.Sprint(whole) != fmt.Sprint(chunked) || fmt.Sprint(werr) != fmt.Sprint(cerr) {
			t.Fatalf("whole: %v %v\nchunked: %v %v", whole, werr, chunked, cerr)
		}
		var pe *ProtocolError
		if werr != nil && !errors.Is(werr, io.EOF) && !errors.As(werr, &pe) {
			t.Fatalf("unexpected error %v", werr)
		}
	})
}

// FuzzSplitInline checks inline splitting on arbitrary lines: no panic, and what it splits can
// be quoted back and split again to the same arguments.
func FuzzSplitInline(f *testing.F) {
	for _, s := range []string{`SET k v`, `"a b" 'c\'d'`, `"\x41\xZZ\n\"" x`, `foo"bar baz"`, `a'b`, "a\vb\f c", "\"\"", "x\x00y"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		args, _, ok := splitInline(line, nil, nil)
		if !ok {
			return
		}
		var quoted []byte
		for _, a := range args {
			quoted = append(quoted, '"')
			for _, c := range a {
				quoted = append(quoted, fmt.Sprintf("\\x%02x", c)...)
			}
			quoted = append(quoted, '"', ' ')
		}
		again, _, ok := splitInline(quoted, nil, nil)
		if !ok || len(again) != len(args) {
			t.Fatalf("%q split into %q; requoted %q split into %q (%v)", line, args, quoted, again, ok)
		}
		for i := range args {
			if !bytes.Equal(args[i], again[i]) {
				t.Fatalf("argument %d: %q became %q", i, args[i], again[i])
			}
		}
	})
}

// FuzzPeekKeys checks PeekKeys against Next on arbitrary input: every command it looks at is one
// Next returns next (unless Next rejects it, say for a limit), with the same second argument, and
// it never reports a command that has not fully arrived.
func FuzzPeekKeys(f *testing.F) {
	for _, s := range []string{
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$1\r\nv\r\n",
		"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n*2\r\n$3\r\nGET\r\n$5\r\nab",
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n", "*0\r\n*1\r\n$1\r\na\r\n", "*2\r\n$3\r\nGET\r\n$-1\r\n",
		"*2\r\n$3\r\nGET\r\n$99999999999999999999\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nabcdef\r\n",
		"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$9223372036854775807\r\n", // size+2 overflows
		"*1\r\n$4\r\nPING\r\n*1\r\n$9223372036854775806\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > initialBufSize {
			return // one Fill must buffer all of it
		}
		rd := NewReader(bytes.NewReader(in), Limits{MaxBulkLen: 1 << 20})
		if err := rd.Fill(); err != nil && !errors.Is(err, io.EOF) {
			return
		}
		var keys [8][]byte
		n := rd.PeekKeys(keys[:])
		for i := range n {
			args, err := rd.Next()
			if err != nil {
				return // Next may refuse what PeekKeys only measured
			}
			if args == nil {
				t.Fatalf("PeekKeys saw %d commands, Next found only %d in %q", n, i, in)
			}
			var want []byte
			if len(args) >= 2 {
				want = args[1]
			}
			if !bytes.Equal(keys[i], want) || (keys[i] == nil) != (want == nil) {
				t.Fatalf("command %d: PeekKeys %q, Next %q (input %q)", i, keys[i], want, in)
			}
		}
	})
}

// TestLongInlineArrivingAtOnce: a line of more than 64 KiB whose end arrives with it, within the
// 80 KiB Redis reads before it checks, is served, as Redis serves it (arriving in small pieces,
// the same line is refused: see TestReader).
func TestLongInlineArrivingAtOnce(t *testing.T) {
	line := "ECHO " + strings.Repeat("x", 70000)
	got, err := parseAll(t, []byte(line+"\r\n"), nil, Limits{}, false)
	if !errors.Is(err, io.EOF) || len(got) != 1 || got[0] != `"ECHO" "`+strings.Repeat("x", 70000)+`"` {
		t.Fatalf("got %d commands, %v", len(got), err)
	}
}
