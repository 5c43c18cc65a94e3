package resp

import (
	"bufio"
	"runtime"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	cases := []struct {
		name, in string
		want     Reply
	}{
		{"status", "+OK\r\n", OK},
		{"other status", "+PONG\r\n", Status("PONG")},
		{"error", "-ERR no\r\n", Error("ERR no")},
		{"int", ":-5\r\n", Int(-5)},
		{"bulk", "$3\r\nabc\r\n", BulkString("abc")},
		{"empty bulk", "$0\r\n\r\n", BulkString("")},
		{"nil bulk", "$-1\r\n", Nil},
		{"nil resp3", "_\r\n", Nil},
		{"nil array", "*-1\r\n", NilArray},
		{"array", "*2\r\n:1\r\n$1\r\nx\r\n", Array([]Reply{Int(1), BulkString("x")})},
		{"map", "%1\r\n+a\r\n:1\r\n", Map([]Reply{Status("a"), Int(1)})},
		{"double", ",1.5\r\n", Double(1.5)},
		{"verbatim", "=7\r\ntxt:abc\r\n", Verbatim("abc")},
		{"attribute skipped", "|1\r\n+k\r\n+v\r\n:7\r\n", Int(7)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := readReply(bufio.NewReader(strings.NewReader(c.in)), 0)
			if err != nil {
				t.Fatal(err)
			}
			if string(Append(nil, got, 3)) != string(Append(nil, c.want, 3)) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
	for _, bad := range []string{"?\r\n", ":x\r\n", "$5\r\nab\r\n", "$2\r\nabXY", "*2\r\n:1\r\n", "$-2\r\n", "+OK\n"} {
		if _, err := readReply(bufio.NewReader(strings.NewReader(bad)), 0); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestHugeAnnouncedBulk: a peer announcing a 1 GiB string it does not send costs no 1 GiB.
func TestHugeAnnouncedBulk(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := readReply(bufio.NewReader(strings.NewReader("$1073741823\r\nabc")), 0); err == nil {
		t.Fatal("a truncated bulk string parsed")
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("allocated %d bytes for 3 bytes received", grew)
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "$3\r\nabc\r\n", "*2\r\n:1\r\n_\r\n", "%1\r\n+a\r\n,2.5\r\n", "|1\r\n+k\r\n+v\r\n#t\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := readReply(bufio.NewReader(strings.NewReader(string(in))), 0)
		if err == nil {
			_ = Append(nil, r, 3)
			_ = Append(nil, r, 2)
		}
	})
}
