package fetchlock_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/fetchlock"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store/memory"
)

// FuzzCommands feeds arbitrary arguments to FETCHLOCK, FETCHFILL and FETCHRELEASE: no input may
// panic, and every reply is a well-formed array, OK or an error. Waiting is off (NoWait) so that
// a held lease cannot stall the fuzzer.
func FuzzCommands(f *testing.F) {
	st := memory.New(memory.Config{})
	defer st.Close()
	n := commands.NewNode(st, commands.Config{}, nil, nil)
	m := fetchlock.New(fetchlock.Config{Store: st})
	defer m.Shutdown(context.Background())
	n.Watch(m)
	fetchlock.Register(n, m, fetchlock.CommandConfig{NoWait: true})
	ctx := &commands.Ctx{Node: n}
	for _, seed := range []string{
		"FETCHLOCK k", "FETCHLOCK k TIMEOUT 10 LEASE 5 REFRESH 100", "FETCHLOCK k TIMEOUT",
		"FETCHFILL k 0123456789abcdef0123456789abcdef v EX 10 TAGS a b", "FETCHFILL k zz v PX -1",
		"FETCHRELEASE k 0123456789abcdef0123456789abcdef", "FETCHLOCK k REFRESH 99999999999999999999",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := bytes.Fields([]byte(line))
		if len(args) == 0 || len(args) > 16 || !bytes.HasPrefix(bytes.ToLower(args[0]), []byte("fetch")) {
			return
		}
		r := n.Exec(ctx, args)
		switch r.Kind {
		case resp.KindArray:
			if len(r.Elems) < 2 {
				t.Fatalf("%q: short array %v", line, r)
			}
		case resp.KindStatus, resp.KindError:
		default:
			t.Fatalf("%q: unexpected reply %v", line, r)
		}
	})
}
