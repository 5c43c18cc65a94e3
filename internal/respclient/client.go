// Package respclient is a small RESP client for tests. It sends commands as multibulk requests
// (or raw bytes) and returns every reply both parsed (Value) and as the exact bytes the server
// sent, so that tests can compare Vela and a real Redis byte for byte. It reads RESP2 and RESP3.
//
// The fluent helpers follow tile38's test style:
//
//	c := respclient.Dial(t, addr)
//	c.Do("SET", "k", "v").OK()
//	c.Do("GET", "k").Bulk("v")
//	c.Do("INCR", "k").Err("ERR value is not an integer or out of range")
//
// Every network call has a deadline, so a server that stops answering fails the test instead of
// hanging it.
package respclient

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultTimeout bounds each Do, Receive and Flush.
const DefaultTimeout = 10 * time.Second

// Conn is one client connection. It is not safe for concurrent use.
type Conn struct {
	t       testing.TB
	addr    string
	nc      net.Conn
	rd      *bufio.Reader
	out     []byte
	timeout time.Duration
}

// Dial connects to addr and closes the connection when the test ends. It fails t on error.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	c, err := DialErr(addr)
	if err != nil {
		t.Fatalf("respclient: dial %s: %v", addr, err)
	}
	c.t = t
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// DialErr connects to addr without a test; Do and the assertions need one (SetTB).
func DialErr(addr string) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, DefaultTimeout)
	if err != nil {
		return nil, err
	}
	return &Conn{addr: addr, nc: nc, rd: bufio.NewReaderSize(nc, 64<<10), timeout: DefaultTimeout}, nil
}

// SetTB sets the test that assertions report to.
func (c *Conn) SetTB(t testing.TB) { c.t = t }

// SetTimeout changes the deadline of each later call.
func (c *Conn) SetTimeout(d time.Duration) { c.timeout = d }

// Addr is the address the connection was dialled to.
func (c *Conn) Addr() string { return c.addr }

// NetConn exposes the socket, for tests that need to half-close or inspect it.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Send queues one command; Flush writes the queue. Arguments may be strings, byte slices or
// integers.
func (c *Conn) Send(args ...any) { c.out = AppendCommand(c.out, Args(args...)...) }

// SendArgs queues one command given as byte slices.
func (c *Conn) SendArgs(args [][]byte) { c.out = AppendCommand(c.out, args...) }

// SendRaw queues bytes as they are (inline commands, malformed input).
func (c *Conn) SendRaw(b []byte) { c.out = append(c.out, b...) }

// Flush writes what Send queued.
func (c *Conn) Flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err
}

// Receive reads one reply, parsed and raw.
func (c *Conn) Receive() (Value, []byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout))
	return ReadValue(c.rd)
}

// Exec sends one command and reads its reply, returning errors instead of failing a test.
func (c *Conn) Exec(args [][]byte) (Value, []byte, error) {
	c.SendArgs(args)
	if err := c.Flush(); err != nil {
		return Value{}, nil, err
	}
	return c.Receive()
}

// Do sends one command and returns its reply for the fluent assertions. A network or parse
// error fails the test at once.
func (c *Conn) Do(args ...any) *Reply {
	c.t.Helper()
	a := Args(args...)
	v, raw, err := c.Exec(a)
	if err != nil {
		c.t.Fatalf("respclient: %s: %v", FormatArgs(a), err)
	}
	return &Reply{t: c.t, Args: a, Value: v, Raw: raw}
}

// ExpectClosed reads until the server closes the connection, failing t when more than max bytes
// arrive or the deadline passes first. It returns what was read.
func (c *Conn) ExpectClosed(max int) []byte {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.rd.Read(buf)
		got = append(got, buf[:n]...)
		if len(got) > max {
			c.t.Fatalf("respclient: expected the connection to close, read %q", got)
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("respclient: connection still open after %v (read %q)", c.timeout, got)
			}
			return got
		}
	}
}

// FormatArgs renders a command for messages.
func FormatArgs(args [][]byte) string {
	parts := make([]string, len(args))
	for i, a := range args {
		s := string(a)
		if len(s) > 64 {
			s = s[:64] + fmt.Sprintf("…(%d bytes)", len(a))
		}
		parts[i] = strconv.Quote(s)
	}
	return strings.Join(parts, " ")
}

// Reply is one command's reply with fluent assertions; each fails the test with the command,
// what was expected and what came back.
type Reply struct {
	t     testing.TB
	Args  [][]byte
	Value Value
	Raw   []byte
}

func (r *Reply) fail(want string) {
	r.t.Helper()
	r.t.Fatalf("%s: want %s, got %s (raw %q)", FormatArgs(r.Args), want, r.Value, r.Raw)
}

// OK asserts +OK.
func (r *Reply) OK() *Reply {
	r.t.Helper()
	return r.Status("OK")
}

// Status asserts a simple-string reply.
func (r *Reply) Status(s string) *Reply {
	r.t.Helper()
	if r.Value.Type != '+' || r.Value.Str != s {
		r.fail("+" + s)
	}
	return r
}

// Err asserts an error reply with exactly this text (without the leading '-').
func (r *Reply) Err(text string) *Reply {
	r.t.Helper()
	if !r.Value.IsError() || r.Value.Str != text {
		r.fail("error " + strconv.Quote(text))
	}
	return r
}

// ErrPrefix asserts an error reply starting with prefix.
func (r *Reply) ErrPrefix(prefix string) *Reply {
	r.t.Helper()
	if !r.Value.IsError() || !strings.HasPrefix(r.Value.Str, prefix) {
		r.fail("error starting with " + strconv.Quote(prefix))
	}
	return r
}

// Int asserts an integer reply.
func (r *Reply) Int(n int64) *Reply {
	r.t.Helper()
	if r.Value.Type != ':' || r.Value.Int != n {
		r.fail(fmt.Sprintf("(integer) %d", n))
	}
	return r
}

// IntBetween asserts an integer reply in [lo, hi].
func (r *Reply) IntBetween(lo, hi int64) *Reply {
	r.t.Helper()
	if r.Value.Type != ':' || r.Value.Int < lo || r.Value.Int > hi {
		r.fail(fmt.Sprintf("an integer in [%d, %d]", lo, hi))
	}
	return r
}

// Bulk asserts a bulk-string reply (or a RESP3 verbatim string) with this content.
func (r *Reply) Bulk(s string) *Reply {
	r.t.Helper()
	if (r.Value.Type != '$' && r.Value.Type != '=') || r.Value.Null || r.Value.Str != s {
		r.fail(strconv.Quote(s))
	}
	return r
}

// Nil asserts a null reply ($-1, *-1 or _).
func (r *Reply) Nil() *Reply {
	r.t.Helper()
	if !r.Value.Null {
		r.fail("(nil)")
	}
	return r
}

// Strings asserts an array of bulk strings, in order.
func (r *Reply) Strings(want ...string) *Reply {
	r.t.Helper()
	ok := (r.Value.Type == '*' || r.Value.Type == '~') && len(r.Value.Elems) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = r.Value.Elems[i].Type == '$' && !r.Value.Elems[i].Null && r.Value.Elems[i].Str == want[i]
	}
	if !ok {
		r.fail(fmt.Sprintf("%q", want))
	}
	return r
}

// Raws asserts the exact bytes of the reply.
func (r *Reply) Raws(want string) *Reply {
	r.t.Helper()
	if string(r.Raw) != want {
		r.fail(strconv.Quote(want))
	}
	return r
}

// Type asserts the RESP type byte of the reply.
func (r *Reply) Type(b byte) *Reply {
	r.t.Helper()
	if r.Value.Type != b {
		r.fail(fmt.Sprintf("a reply of type %q", b))
	}
	return r
}
