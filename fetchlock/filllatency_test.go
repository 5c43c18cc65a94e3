package fetchlock_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/redistest"
)

// TestFillLatency measures, with 1,000 waiters on one key, the time from sending FETCHFILL to the
// last waiter receiving its HIT, over many rounds, and prints p50/p99. It is a benchmark, not a
// check: set VELA_BENCH_FETCHLOCK=1 (and VELA_BENCH_ROUNDS, default 100) to run it:
//
//	VELA_BENCH_FETCHLOCK=1 go test -run TestFillLatency -v ./fetchlock/
//
// The server runs in the test process; the waiters are raw sockets, each read by a goroutine of
// its own with a minimal RESP reader, and the holder uses go-redis. TestPublishLatencyRedis
// measures the same fan-out done by redis-server in the same way, for reference.
func TestFillLatency(t *testing.T) {
	if os.Getenv("VELA_BENCH_FETCHLOCK") == "" {
		t.Skip("set VELA_BENCH_FETCHLOCK=1 to run the fill-to-last-HIT latency benchmark")
	}
	const n = 1000
	rounds := 100
	if s := os.Getenv("VELA_BENCH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	srv := node(t, func(c *config.Config) { c.MaxClients = n + 100 })
	holder := client(t, srv, 1)
	conns := make([]net.Conn, n)
	for i := range conns {
		nc, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		conns[i] = nc
	}
	waitHits := goroutineReaders(conns, hitReply)
	last := make([]time.Duration, 0, rounds)   // fill sent -> last waiter's HIT
	median := make([]time.Duration, 0, rounds) // fill sent -> median waiter's HIT
	cpu := make([]time.Duration, 0, rounds)    // CPU time the process (server and waiters) used meanwhile
	for round := range rounds {
		key := "bench:" + strconv.Itoa(round)
		token := mustLock(t, holder, key, "LEASE", 60000)
		req := fmt.Sprintf("*4\r\n$9\r\nFETCHLOCK\r\n$%d\r\n%s\r\n$7\r\nTIMEOUT\r\n$5\r\n30000\r\n", len(key), key)
		for _, nc := range conns {
			if _, err := nc.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "all waiters to queue", func() bool { return waiters(srv) == n })
		hits := make(chan []time.Time, 1)
		go func() { hits <- waitHits(t, conns) }()
		time.Sleep(5 * time.Millisecond) // let the readers start reading
		cpu0 := cpuTime()
		start := time.Now()
		if msg := fill(holder, key, token, "value", "EX", 60); msg != "" {
			t.Fatalf("FETCHFILL: %s", msg)
		}
		got := <-hits
		cpu = append(cpu, cpuTime()-cpu0)
		if t.Failed() {
			return
		}
		lat := make([]time.Duration, n)
		for i, at := range got {
			lat[i] = at.Sub(start)
		}
		slices.Sort(lat)
		last = append(last, lat[n-1])
		median = append(median, lat[n/2])
	}
	slices.Sort(last)
	slices.Sort(median)
	slices.Sort(cpu)
	pct := func(d []time.Duration, p float64) time.Duration { return d[min(len(d)-1, int(float64(len(d))*p))] }
	t.Logf("%d rounds, %d waiters each, FETCHFILL sent -> last waiter's HIT: p50 %v  p99 %v  max %v",
		rounds, n, pct(last, 0.50), pct(last, 0.99), last[len(last)-1])
	t.Logf("FETCHFILL sent -> median waiter's HIT: p50 %v  p99 %v", pct(median, 0.50), pct(median, 0.99))
	t.Logf("CPU time (user+system, server and waiters together) from FETCHFILL to the last HIT: p50 %v  p99 %v",
		pct(cpu, 0.50), pct(cpu, 0.99))
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average: %s", strings.TrimSpace(string(la)))
	}
}

// hitReply is what every waiter receives once the key is filled.
const hitReply = "*2\r\n$3\r\nHIT\r\n$5\r\nvalue\r\n"

// goroutineReaders returns a function that reads want, a RESP array, from every connection, each
// from a goroutine of its own, and returns the time each one completed.
func goroutineReaders(conns []net.Conn, want string) func(*testing.T, []net.Conn) []time.Time {
	readers := make([]*bufio.Reader, len(conns))
	for i, nc := range conns {
		readers[i] = bufio.NewReader(nc)
	}
	lineCount := strings.Count(want, "\n")
	return func(t *testing.T, _ []net.Conn) []time.Time {
		got := make([]time.Time, len(conns))
		var wg sync.WaitGroup
		for i, br := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lines := make([]string, lineCount)
				for j := range lines {
					line, err := br.ReadString('\n')
					if err != nil {
						t.Error(err)
						return
					}
					lines[j] = line
				}
				got[i] = time.Now()
				if strings.Join(lines, "") != want {
					t.Errorf("waiter got %q", lines)
				}
			}()
		}
		wg.Wait()
		return got
	}
}

// cpuTime returns the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPublishLatencyRedis is TestFillLatency's reference: the same fan-out done by redis-server, a
// PUBLISH to 1,000 subscribers, measured the same way (send -> last subscriber's message) with the
// same client, on the same machine. It runs with VELA_BENCH_FETCHLOCK=1.
func TestPublishLatencyRedis(t *testing.T) {
	if os.Getenv("VELA_BENCH_FETCHLOCK") == "" {
		t.Skip("set VELA_BENCH_FETCHLOCK=1 to run the PUBLISH fan-out reference")
	}
	const n = 1000
	rounds := 100
	if s := os.Getenv("VELA_BENCH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	rs := redistest.Start(t)
	pub := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer pub.Close()
	conns := make([]net.Conn, n)
	for i := range conns {
		nc, err := net.Dial("tcp", rs.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Write([]byte("*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n")); err != nil {
			t.Fatal(err)
		}
		conns[i] = nc
	}
	const subscribed = "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
	goroutineReaders(conns, subscribed)(t, conns) // the confirmations; also waits for all to subscribe
	const message = "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nvalue\r\n"
	read := goroutineReaders(conns, message)
	last := make([]time.Duration, 0, rounds)
	for range rounds {
		got := make(chan []time.Time, 1)
		go func() { got <- read(t, conns) }()
		time.Sleep(5 * time.Millisecond)
		start := time.Now()
		if err := pub.Publish(context.Background(), "ch", "value").Err(); err != nil {
			t.Fatal(err)
		}
		times := <-got
		if t.Failed() {
			return
		}
		latest := slices.MaxFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		last = append(last, latest.Sub(start))
	}
	slices.Sort(last)
	pct := func(d []time.Duration, p float64) time.Duration { return d[min(len(d)-1, int(float64(len(d))*p))] }
	t.Logf("redis-server: %d rounds, PUBLISH to %d subscribers, sent -> last subscriber's message: p50 %v  p99 %v  max %v",
		rounds, n, pct(last, 0.50), pct(last, 0.99), last[len(last)-1])
}
