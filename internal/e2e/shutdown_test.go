package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/internal/testproc"
)

// TestShutdownLikeRedis: SHUTDOWN's refusals are Redis's (bad options, ABORT with nothing to
// abort, inside MULTI, from a script); the memory store refuses SAVE, having nowhere to save.
// Then SHUTDOWN stops the node: the client's connection closes with no reply, and the binary
// exits 0, go-redis's Shutdown counting that as success.
func TestShutdownLikeRedis(t *testing.T) {
	rs := redistest.Start(t)
	node := testnode.StartDefault(t)
	sameReplies(t, respclient.Dial(t, rs.Addr), respclient.Dial(t, node.Addr()), [][]any{
		{"SHUTDOWN", "BOGUS"}, {"SHUTDOWN", "SAVE", "NOSAVE"}, {"SHUTDOWN", "ABORT", "NOW"},
		{"SHUTDOWN", "abort"}, {"MULTI"}, {"SHUTDOWN", "NOW"}, {"EXEC"},
		{"EVAL", "return redis.pcall('shutdown')", "0"}, {"SHUTDOWN", "NOSAVE", "NOW", "FORCE", "x"},
	})
	c := respclient.Dial(t, node.Addr())
	if r := c.Do("SHUTDOWN", "SAVE").Value; r.Text() != "ERR Errors trying to SHUTDOWN. Check logs." {
		t.Errorf("SHUTDOWN SAVE on the memory store = %v", r)
	}

	// In process: no reply, the connection closes, the node stops.
	c.Send("SHUTDOWN", "NOSAVE")
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := c.ExpectClosed(0); len(got) != 0 {
		t.Fatalf("SHUTDOWN replied %q", got)
	}
	select {
	case <-node.Stopped():
	case <-time.After(15 * time.Second):
		t.Fatal("the node did not stop after SHUTDOWN")
	}

	// The binary exits 0.
	p := testproc.Start(t, velaBinary(t))
	gc := redis.NewClient(&redis.Options{Addr: p.Addr, MaxRetries: -1})
	defer gc.Close()
	if err := gc.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := gc.Shutdown(context.Background()).Err(); err != nil {
		t.Fatalf("go-redis Shutdown: %v", err)
	}
	if code, err := p.Wait(15 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit code %d, %v\n%s", code, err, p.Output())
	}
}
