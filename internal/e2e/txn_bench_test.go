package e2e_test

import (
	"testing"

	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// BenchmarkLargeTransaction runs MULTI, 20,000 INCRs and EXEC through a socket, and reports the
// time per queued command. Each non-pipelined command inside EXEC used to look at every reply
// before it, which made a transaction's cost grow with the square of its size (200,000
// commands: 15.6 s against Redis's 0.84).
func BenchmarkLargeTransaction(b *testing.B) {
	const n, chunk = 20000, 1000
	c := respclient.Dial(b, testnode.StartDefault(b).Addr())
	defer c.Close()
	b.ReportAllocs()
	for b.Loop() {
		c.Send("MULTI")
		sent := 1
		for i := 0; i < n; i++ {
			c.Send("INCR", "counter")
			sent++
			if sent == chunk || i == n-1 {
				if err := c.Flush(); err != nil {
					b.Fatal(err)
				}
				for ; sent > 0; sent-- {
					if _, _, err := c.Receive(); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		v, _, err := c.Exec([][]byte{[]byte("EXEC")})
		if err != nil || len(v.Elems) != n {
			b.Fatalf("EXEC: %d replies, %v", len(v.Elems), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/command")
}
