package e2e_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// exchange sends raw to a fresh connection to addr and returns everything the server sends back
// until it closes the connection; ok is false when it stays open for the whole timeout.
func exchange(t *testing.T, addr string, raw []byte, timeout time.Duration) (reply []byte, ok bool) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(timeout))
	if _, err := nc.Write(raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := nc.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out.Bytes(), false
			}
			return out.Bytes(), true
		}
	}
}

// alive fails t unless addr answers PING on a new connection.
func alive(t *testing.T, addr string) {
	t.Helper()
	c := respclient.Dial(t, addr)
	c.Do("PING").Status("PONG")
	_ = c.Close()
}

// TestMalformedRESP sends malformed requests to Vela and to Redis: both must send the same
// "-ERR Protocol error: …" (after the replies to the valid commands before it), close the
// connection, and keep serving other clients.
func TestMalformedRESP(t *testing.T) {
	long := strings.Repeat("9", 70<<10) // past the 64 KB inline and count-line limits
	cases := []struct{ name, in, want string }{
		{"bulk length not a number", "*1\r\n$abc\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"negative bulk length", "*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk over 512 MB", "*1\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"multibulk length not a number", "*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"multibulk length over INT_MAX", "*2147483648\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"plus sign in count", "*+1\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"simple string instead of bulk", "*1\r\n+foo\r\n", "-ERR Protocol error: expected '$', got '+'\r\n"},
		{"integer instead of bulk", "*2\r\n$3\r\nGET\r\n:1\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"},
		{"after a valid command", "PING\r\n*1\r\n$x\r\n", "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"},
		{"unbalanced quotes", "SET k \"v\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
		{"quote not followed by space", "SET k \"v\"x\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
		{"inline line too long", long, "-ERR Protocol error: too big inline request\r\n"},
		{"multibulk count line too long", "*" + long, "-ERR Protocol error: too big mbulk count string\r\n"},
		{"bulk count line too long", "*1\r\n$" + long, "-ERR Protocol error: too big bulk count string\r\n"},
	}
	servers := map[string]string{"vela": testnode.StartDefault(t).Addr()}
	servers["redis"] = redistest.Start(t).Addr
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for name, addr := range servers {
				got, closed := exchange(t, addr, []byte(tc.in), 10*time.Second)
				if string(got) != tc.want || !closed {
					t.Errorf("%s: got %q (closed %v), want %q and a closed connection", name, got, closed, tc.want)
				}
				alive(t, addr)
			}
		})
	}
}

// TestProtoMaxBulkLen: a bulk of exactly proto_max_bulk_len is accepted, one byte more is a
// protocol error, on Vela and on Redis configured alike.
func TestProtoMaxBulkLen(t *testing.T) {
	const limit = 1 << 20
	cfg := testnode.Config()
	cfg.ProtoMaxBulkLen = limit
	servers := map[string]string{"vela": testnode.Start(t, cfg).Addr()}
	servers["redis"] = redistest.Start(t, "--proto-max-bulk-len", strconv.Itoa(limit)).Addr
	for name, addr := range servers {
		c := respclient.Dial(t, addr)
		c.Do("SET", "big", make([]byte, limit)).OK()
		c.Do("STRLEN", "big").Int(limit)
		c.Do("APPEND", "big", "x").Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
		got, closed := exchange(t, addr, []byte(fmt.Sprintf("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n", limit+1)), 10*time.Second)
		if string(got) != "-ERR Protocol error: invalid bulk length\r\n" || !closed {
			t.Errorf("%s: bulk of limit+1: %q (closed %v)", name, got, closed)
		}
		alive(t, addr)
	}
}

// TestUnauthenticatedLimits: with requirepass, a client that has not authenticated may send at
// most 10 arguments of at most 16 KB each, as in Redis; after AUTH the normal limits apply.
func TestUnauthenticatedLimits(t *testing.T) {
	cfg := testnode.Config()
	cfg.RequirePass = "pw"
	servers := map[string]string{"vela": testnode.Start(t, cfg).Addr()}
	servers["redis"] = redistest.Start(t, "--requirepass", "pw").Addr
	many := respclient.AppendCommand(nil, respclient.Args("MSET", "a", 1, "b", 2, "c", 3, "d", 4, "e", 5)...)
	long := respclient.AppendCommand(nil, respclient.Args("GET", strings.Repeat("k", 16385))...)
	for name, addr := range servers {
		for _, tc := range []struct {
			in   []byte
			want string
		}{
			{many, "-ERR Protocol error: unauthenticated multibulk length\r\n"},
			{long, "-ERR Protocol error: unauthenticated bulk length\r\n"},
		} {
			got, closed := exchange(t, addr, tc.in, 5*time.Second)
			if string(got) != tc.want || !closed {
				t.Errorf("%s: %q…: got %q (closed %v), want %q and close", name, tc.in[:16], got, closed, tc.want)
			}
		}
		pre := respclient.Dial(t, addr)
		pre.Do("GET", "k").Err("NOAUTH Authentication required.")
		pre.Do("MSET", "a", 1, "b", 2).Err("NOAUTH Authentication required.")
		c := respclient.Dial(t, addr)
		c.Do("AUTH", "pw").OK()
		c.SendRaw(many)
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, raw, err := c.Receive(); err != nil || string(raw) != "+OK\r\n" {
			t.Fatalf("%s: MSET of 11 arguments after AUTH: %q, %v", name, raw, err)
		}
		c.Do("GET", strings.Repeat("k", 16385)).Nil()
	}
}

// TestMaxClients: the connection beyond max_clients gets Redis's error and is closed; once a
// client leaves, a new one is served.
func TestMaxClients(t *testing.T) {
	cfg := testnode.Config()
	cfg.MaxClients = 3
	srv := testnode.Start(t, cfg)
	var conns []*respclient.Conn
	for i := 0; i < 3; i++ {
		c := respclient.Dial(t, srv.Addr())
		c.Do("PING").Status("PONG")
		conns = append(conns, c)
	}
	got, closed := exchange(t, srv.Addr(), nil, 5*time.Second)
	if string(got) != "-ERR max number of clients reached\r\n" || !closed {
		t.Fatalf("4th client: %q (closed %v)", got, closed)
	}
	_ = conns[0].Close()
	// The server notices the close asynchronously: poll with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := respclient.DialErr(srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		v, _, err := c.Exec([][]byte{[]byte("PING")})
		_ = c.Close()
		if err == nil && v.Str == "PONG" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot freed after a client left: %v %v", v, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdleTimeout: a client idle longer than timeout is disconnected; one that keeps sending
// commands is not.
func TestIdleTimeout(t *testing.T) {
	const idle = 500 * time.Millisecond
	cfg := testnode.Config()
	cfg.Timeout = idle
	srv := testnode.Start(t, cfg)
	active := respclient.Dial(t, srv.Addr())
	quiet := respclient.Dial(t, srv.Addr())
	quiet.Do("PING").Status("PONG")
	start := time.Now()
	for time.Since(start) < 3*idle {
		active.Do("PING").Status("PONG")
		time.Sleep(idle / 5)
	}
	quiet.SetTimeout(10 * time.Second)
	if got := quiet.ExpectClosed(0); len(got) != 0 {
		t.Fatalf("idle client received %q", got)
	}
	active.Do("PING").Status("PONG")
}

// TestAnnouncedBulkDoesNotAllocate: clients announcing 500 MB bulks and sending 10 bytes of them
// must not make the server allocate the announced sizes.
func TestAnnouncedBulkDoesNotAllocate(t *testing.T) {
	srv := testnode.StartDefault(t)
	before := heapInUse()
	const clients = 8
	var conns []net.Conn
	for i := 0; i < clients; i++ {
		nc, err := net.DialTimeout("tcp", srv.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n0123456789")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	// Let the server read what was sent; a PING on another connection is answered only after
	// the listener has accepted the earlier ones, and the reads are instantaneous.
	alive(t, srv.Addr())
	time.Sleep(200 * time.Millisecond)
	grown := int64(heapInUse()) - int64(before)
	t.Logf("heap grew by %d bytes for %d clients announcing 500 MB each", grown, clients)
	if grown > 16<<20 {
		t.Fatalf("heap grew by %d bytes", grown)
	}
	for _, nc := range conns {
		_ = nc.Close()
	}
	alive(t, srv.Addr())
}

// TestConcurrentClientsRace exercises the listener, the command table and the store from many
// connections at once, for the race detector.
func TestConcurrentClientsRace(t *testing.T) {
	srv := testnode.StartDefault(t)
	var wg sync.WaitGroup
	n := 4 * runtime.GOMAXPROCS(0)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := respclient.DialErr(srv.Addr())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for j := 0; j < 200; j++ {
				key := []byte("k" + strconv.Itoa(j%10))
				cmds := [][][]byte{{[]byte("INCR"), key}, {[]byte("GET"), key}, {[]byte("EXPIRE"), key, []byte("100")}}
				if j%20 == 0 { // whole-keyspace commands are slow under the race detector
					cmds = append(cmds, [][]byte{[]byte("SCAN"), []byte("0")}, [][]byte{[]byte("CLIENT"), []byte("LIST")},
						[][]byte{[]byte("DBSIZE")})
				}
				for _, cmd := range cmds {
					if _, _, err := c.Exec(cmd); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	c := respclient.Dial(t, srv.Addr())
	var total int64
	for j := 0; j < 10; j++ {
		r := c.Do("GET", "k"+strconv.Itoa(j))
		v, _ := strconv.ParseInt(r.Value.Str, 10, 64)
		total += v
	}
	if total != int64(n*200) {
		t.Fatalf("INCRs lost: total %d, want %d", total, n*200)
	}
}
