package e2e_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestNetStatsLikeRedis: after CONFIG RESETSTAT, the same commands on one connection give the
// same total_net_input_bytes and total_net_output_bytes as Redis's (every byte read, the INFO
// command's included; every reply written before it), and a connection over the client limit
// counts in rejected_connections on both.
func TestNetStatsLikeRedis(t *testing.T) {
	for _, loops := range []int{1, 0} {
		cfg := testnode.Config()
		cfg.EventLoops = loops
		redis := redistest.Start(t)
		vela := testnode.Start(t, cfg)
		stats := func(addr string) map[string]string {
			c := respclient.Dial(t, addr)
			c.Do("CONFIG", "RESETSTAT").OK()
			c.Do("SET", "a", strings.Repeat("x", 1000)).OK()
			c.Do("GET", "a")
			c.Do("MGET", "a", "nosuch")
			c.Do("CONFIG", "SET", "maxclients", "2").OK()
			// This connection and a second fill the limit; a third is refused.
			respclient.Dial(t, addr)
			nc, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _ := nc.Read(buf)
			nc.Close()
			if got := string(buf[:n]); got != "-ERR max number of clients reached\r\n" {
				t.Errorf("%s: third connection got %q", addr, got)
			}
			out := map[string]string{}
			for _, l := range infoLines(c, "stats") {
				if k, v, ok := strings.Cut(l, ":"); ok {
					out[k] = v
				}
			}
			c.Do("CONFIG", "SET", "maxclients", "10000").OK()
			return out
		}
		want, got := stats(redis.Addr), stats(vela.Addr())
		for _, k := range []string{"total_net_input_bytes", "total_net_output_bytes", "rejected_connections"} {
			if got[k] == "" || got[k] != want[k] {
				t.Errorf("event_loops=%d: %s = %q, Redis's %q", loops, k, got[k], want[k])
			}
		}
		for _, k := range []string{"instantaneous_input_kbps", "instantaneous_output_kbps"} {
			if _, ok := got[k]; !ok {
				t.Errorf("INFO stats lacks %s", k)
			}
		}
	}
}

// TestClientBuffers: CLIENT LIST shows a client's input as Redis counts it (qbuf: the command
// being run, 26 bytes for CLIENT LIST) and its input buffer's size (rbs), on event loops and on
// goroutines; INFO's client_recent_max_input_buffer shows the buffer of a client that sent a
// 100 KB value, while it is connected.
func TestClientBuffers(t *testing.T) {
	field := func(line, name string) string {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, name+"="); ok {
				return v
			}
		}
		return ""
	}
	for _, loops := range []int{1, 0} {
		cfg := testnode.Config()
		cfg.EventLoops = loops
		vela := testnode.Start(t, cfg)
		redis := redistest.Start(t)
		for _, addr := range []string{redis.Addr, vela.Addr()} {
			line := respclient.Dial(t, addr).Do("CLIENT", "LIST").Value.Text()
			if q := field(line, "qbuf"); q != "26" {
				t.Errorf("%s, loops %d: qbuf=%s while running CLIENT LIST, want 26", addr, loops, q)
			}
			if rbs := field(line, "rbs"); rbs == "0" || rbs == "" {
				t.Errorf("%s, loops %d: rbs=%q", addr, loops, rbs)
			}
		}
		big := respclient.Dial(t, vela.Addr())
		big.Do("SET", "k", strings.Repeat("v", 100000)).OK()
		info := respclient.Dial(t, vela.Addr()).Do("INFO", "clients").Value.Text()
		var maxIn int
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, "client_recent_max_input_buffer:"); ok {
				maxIn, _ = strconv.Atoi(v)
			}
		}
		if maxIn < 100000 {
			t.Errorf("loops %d: client_recent_max_input_buffer %d with a client that sent 100 KB connected", loops, maxIn)
		}
	}
}
