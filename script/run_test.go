package script

import (
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/resp"
)

// killedBefore is a caller whose run SCRIPT KILL asked to stop before the runner started it.
type killedBefore struct{}

func (killedBefore) Call([][]byte) resp.Reply { return resp.OK }
func (killedBefore) Killed() Error            { return ErrKilled }

// TestKillBeforeStart: a kill that comes after the run was announced (SCRIPT KILL found the
// script busy) but before the runner armed it still stops it, at its first instruction, with
// the kill's reply, not the limit's.
func TestKillBeforeStart(t *testing.T) {
	var r Runner
	r.SetLimit(2 * time.Second) // without the kill, the loop ends here, with the limit's reply
	s, err := NewCache().Load([]byte("local i = 0\nwhile true do i = i + 1 end"))
	if err != nil {
		t.Fatal(err)
	}
	reply, fresh := r.Run(s, nil, nil, killedBefore{})
	if !reply.IsError() || !strings.HasPrefix(reply.Str, string(ErrKilled)) || len(fresh) != 1 {
		t.Fatalf("a script killed before it started: %v, %q", reply, fresh)
	}
}
