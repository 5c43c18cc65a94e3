package server_test

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/testnode"
)

// TestServedGetDoesNotAllocate checks the whole hot path of a served request — read, parse,
// dispatch, store, reply, write — on the event loop, with the node's defaults (stats and metrics
// on): pipelined GET hits sent over a real socket cost no allocation per command. The client
// writes one prebuilt batch and reads into one buffer, so the process's allocation count is the
// server's (plus a little background work, hence the margin).
func TestServedGetDoesNotAllocate(t *testing.T) {
	if testing.Short() {
		t.Skip("measures allocations over 40,000 requests")
	}
	cfg := testnode.Config()
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.EventLoops = 1
	srv := testnode.Start(t, cfg)
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	set := "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"
	if _, err := nc.Write([]byte(set)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	if _, err := io.ReadFull(nc, buf[:5]); err != nil || string(buf[:5]) != "+OK\r\n" {
		t.Fatalf("SET: %q, %v", buf[:5], err)
	}
	const batch = 100
	get := "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"
	reply := "$5\r\nvalue\r\n"
	var req []byte
	for range batch {
		req = append(req, get...)
	}
	round := func() {
		if _, err := nc.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(nc, buf[:batch*len(reply)]); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 { // warm up: buffers grown, the connection on the loop
		round()
	}
	const rounds = 400
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range rounds {
		round()
	}
	runtime.ReadMemStats(&after)
	if string(buf[:len(reply)]) != reply {
		t.Fatalf("GET replied %q", buf[:len(reply)])
	}
	perCommand := float64(after.Mallocs-before.Mallocs) / (rounds * batch)
	t.Logf("%.4f allocations per GET over %d GETs", perCommand, rounds*batch)
	if perCommand > 0.05 {
		t.Fatalf("%.4f allocations per served GET, want none", perCommand)
	}
}
