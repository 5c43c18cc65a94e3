package e2e_test

import (
	"fmt"
	"testing"

	"github.com/vela-cache/vela/internal/respclient"
)

// sameReplies sends each command to Redis and to Vela, in order, and fails t for each whose
// replies differ.
func sameReplies(t *testing.T, redis, vela *respclient.Conn, commands [][]any) {
	t.Helper()
	for _, args := range commands {
		w, g := redis.Do(args...).Value, vela.Do(args...).Value
		if fmt.Sprint(w) != fmt.Sprint(g) {
			t.Errorf("%v:\n redis: %v\n  vela: %v", args, w, g)
		}
	}
}
