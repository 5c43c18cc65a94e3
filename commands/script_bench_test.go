package commands

import (
	"testing"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/script"
	"github.com/vela-cache/vela/store/memory"
)

// BenchmarkEval measures EVALSHA of a one-GET script and of a lock's SET NX, from dispatch to
// reply, without a socket: what a script costs beyond the commands it calls.
func BenchmarkEval(b *testing.B) {
	n := NewNode(memory.New(memory.Config{}), Config{}, nil, nil)
	ctx := &Ctx{Node: n}
	n.Exec(ctx, [][]byte{[]byte("SET"), []byte("key:1"), []byte("v")})
	for _, c := range []struct{ name, body string }{
		{"get", "return redis.call('GET', KEYS[1])"},
		{"lock", "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', 30000) then return 1 end return 0"},
	} {
		sha := script.SHA1Hex([]byte(c.body))
		n.Exec(ctx, [][]byte{[]byte("SCRIPT"), []byte("LOAD"), []byte(c.body)})
		args := [][]byte{[]byte("EVALSHA"), []byte(sha), []byte("1"), []byte("key:1"), []byte("tok")}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if r := n.Exec(ctx, args); r.Kind == resp.KindError {
					b.Fatal(r.Str)
				}
			}
		})
	}
}
