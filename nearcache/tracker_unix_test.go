//go:build unix

package nearcache

import (
	"syscall"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
)

// A Redis that stops answering without closing the connection (hung, or cut off by the network)
// is noticed by the PING within Ping + Timeout, and the cache stops serving.
func TestTrackerNoticesSilentRedis(t *testing.T) {
	c, _, srv := startTracked(t)
	fill(c, "k", "v", 0)
	if err := syscall.Kill(srv.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(srv.Pid(), syscall.SIGCONT) }()
	start := time.Now()
	redistest.WaitFor(t, "the silent channel to be noticed", func() bool { return !c.Live() })
	if held(c, "k")() {
		t.Fatal("served a copy with the channel gone")
	}
	t.Logf("noticed after %v (ping 200ms + timeout 300ms)", time.Since(start).Round(time.Millisecond))
	_ = syscall.Kill(srv.Pid(), syscall.SIGCONT)
	redistest.WaitFor(t, "the tracker to come back", c.Live)
}
