package commands

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestMonitorLine: the time with six digits of microseconds, "lua" for a script's command,
// redaction, Redis's quoting, and an argument past monitorArgMax cut with the count of bytes
// left out.
func TestMonitorLine(t *testing.T) {
	at := time.Unix(1700000000, 42000)
	args := func(s ...string) [][]byte {
		out := make([][]byte, len(s))
		for i, a := range s {
			out[i] = []byte(a)
		}
		return out
	}
	for _, c := range []struct {
		ctx  *Ctx
		args [][]byte
		want string
	}{
		{&Ctx{inScript: true}, args("set", "k", "a\"b\\c\n\x01\xff"), `+1700000000.000042 [0 lua] "set" "k" "a\"b\\c\n\x01\xff"`},
		{&Ctx{}, args("AUTH", "u", "p"), `+1700000000.000042 [0 ?] "AUTH" "(redacted)" "(redacted)"`},
		{&Ctx{}, args("HELLO", "3", "SETNAME", "auth", "AUTH", "u", "p"), `+1700000000.000042 [0 ?] "HELLO" "3" "SETNAME" "auth" "AUTH" "(redacted)" "(redacted)"`},
		{&Ctx{}, args("HELLO", "3", "AUTH", "u"), `+1700000000.000042 [0 ?] "HELLO" "3" "AUTH" "u"`},
	} {
		if got := string(monitorLine(c.ctx, c.args, at)); got != c.want+"\r\n" {
			t.Errorf("monitorLine(%q) =\n %q, want\n %q", c.args, got, c.want+"\r\n")
		}
	}
	big := bytes.Repeat([]byte("v"), monitorArgMax+5)
	line := string(monitorLine(&Ctx{}, [][]byte{[]byte("SET"), []byte("k"), big}, at))
	if !strings.HasSuffix(line, `"...5 more bytes`+"\r\n") || len(line) > monitorArgMax+100 {
		t.Errorf("a long argument: %d bytes ending %q", len(line), line[len(line)-40:])
	}
}
