package e2e_test

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestLCSLikeRedis compares LCS with Redis's on 300 pairs of random strings up to 300 bytes over
// small alphabets (long common subsequences with many ties, where the walk back through the
// table decides which ranges are reported), in every form: the subsequence, LEN, IDX with
// MINMATCHLEN and WITHMATCHLEN, in RESP2 and RESP3; and the limit on the table's size.
func TestLCSLikeRedis(t *testing.T) {
	redis := respclient.Dial(t, redistest.Start(t, "--proto-max-bulk-len", "1mb").Addr)
	cfg := testnode.Config()
	cfg.ProtoMaxBulkLen = 1 << 20
	vela := respclient.Dial(t, testnode.Start(t, cfg).Addr())
	r := rand.New(rand.NewSource(1))
	str := func() string {
		alphabet := "ab"[:1+r.Intn(2)] + "cdefgh"[:r.Intn(7)]
		var b strings.Builder
		for n := r.Intn(301); n > 0; n-- {
			b.WriteByte(alphabet[r.Intn(len(alphabet))])
		}
		return b.String()
	}
	var cmds [][]any
	for i := range 300 {
		if i == 150 { // the rest in RESP3: IDX answers a map
			sameReplies(t, redis, vela, cmds)
			cmds = nil
			redis.Do("HELLO", "3")
			vela.Do("HELLO", "3")
		}
		cmds = append(cmds, []any{"MSET", "{l}a", str(), "{l}b", str()},
			[]any{"LCS", "{l}a", "{l}b"}, []any{"LCS", "{l}a", "{l}b", "LEN"},
			[]any{"LCS", "{l}a", "{l}b", "IDX"}, []any{"LCS", "{l}b", "{l}a", "IDX", "WITHMATCHLEN"},
			[]any{"LCS", "{l}a", "{l}b", "IDX", "MINMATCHLEN", r.Intn(5), "WITHMATCHLEN"})
	}
	// 600 × 600 positions take 1.4 MB, past the 1 MB proto-max-bulk-len both run with.
	cmds = append(cmds, []any{"SET", "{l}a", strings.Repeat("x", 600)}, []any{"SET", "{l}b", strings.Repeat("y", 600)},
		[]any{"LCS", "{l}a", "{l}b"}, []any{"LCS", "{l}a", "{l}b", "LEN"})
	sameReplies(t, redis, vela, cmds)
}
