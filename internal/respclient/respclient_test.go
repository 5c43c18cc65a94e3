package respclient_test

import (
	"bufio"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReadValue(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"status", "+OK\r\n", `+"OK"`},
		{"error", "-ERR x\r\n", `(error) "ERR x"`},
		{"int", ":-5\r\n", "(integer) -5"},
		{"bulk", "$3\r\na\r\n\r\n", `"a\r\n"`},
		{"null bulk", "$-1\r\n", "(nil)"},
		{"null array", "*-1\r\n", "(nil array)"},
		{"resp3 null", "_\r\n", "(null)"},
		{"array", "*2\r\n:1\r\n$1\r\nx\r\n", `*[(integer) 1, "x"]`},
		{"map", "%1\r\n+a\r\n:1\r\n", `%[+"a", (integer) 1]`},
		{"set", "~1\r\n$1\r\nx\r\n", `~["x"]`},
		{"double", ",1.5\r\n", ",1.5"},
		{"bool", "#t\r\n", "(boolean) true"},
		{"verbatim", "=7\r\ntxt:abc\r\n", `(verbatim txt) "abc"`},
		{"push", ">1\r\n+x\r\n", `>[+"x"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, raw, err := respclient.ReadValue(bufio.NewReader(strings.NewReader(tc.in)))
			if err != nil {
				t.Fatal(err)
			}
			if v.String() != tc.want || string(raw) != tc.in {
				t.Fatalf("got %s raw %q, want %s raw %q", v, raw, tc.want, tc.in)
			}
		})
	}
	for _, bad := range []string{"", "+OK\n", "$5\r\nab\r\n", "?x\r\n", ":x\r\n", "*2\r\n:1\r\n"} {
		if _, _, err := respclient.ReadValue(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("ReadValue(%q) succeeded", bad)
		}
	}
}

// TestFluentBothServers runs the same fluent cases against a real Redis and against Vela.
func TestFluentBothServers(t *testing.T) {
	servers := map[string]string{"vela": testnode.StartDefault(t).Addr()}
	servers["redis"] = redistest.Start(t).Addr
	for name, addr := range servers {
		t.Run(name, func(t *testing.T) {
			c := respclient.Dial(t, addr)
			c.Do("SET", "k", "v").OK()
			c.Do("GET", "k").Bulk("v")
			c.Do("GET", "missing").Nil().Raws("$-1\r\n")
			c.Do("INCR", "n").Int(1)
			c.Do("INCRBY", "n", 41).Int(42)
			c.Do("TYPE", "k").Status("string")
			c.Do("INCR", "k").Err("ERR value is not an integer or out of range")
			c.Do("MGET", "k", "missing").Raws("*2\r\n$1\r\nv\r\n$-1\r\n")
			c.Do("TTL", "k").Int(-1)
			c.Do("EXPIRE", "k", 100).Int(1)
			c.Do("TTL", "k").IntBetween(99, 100)
			c.Do("HELLO", 3).Type('%')
			c.Do("GET", "missing").Nil().Raws("_\r\n")
			c.Do("NOSUCH", "a").ErrPrefix("ERR unknown command 'NOSUCH'")
			c.Send("PING")
			c.Send("ECHO", "x")
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"+PONG\r\n", "$1\r\nx\r\n"} {
				if _, raw, err := c.Receive(); err != nil || string(raw) != want {
					t.Fatalf("pipelined reply %q, %v; want %q", raw, err, want)
				}
			}
			c.Do("FLUSHALL").OK()
			c.Do("QUIT").OK()
			c.ExpectClosed(0)
		})
	}
}
