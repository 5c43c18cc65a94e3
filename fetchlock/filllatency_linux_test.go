package fetchlock_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/testproc"
)

// The fan-out benchmarks below are measurements, not checks: set VELA_BENCH_FETCHLOCK=1 (and
// VELA_BENCH_ROUNDS, default 100) to run them:
//
//	VELA_BENCH_FETCHLOCK=1 go test -count=1 -run 'TestFillLatency|TestPublishLatencyRedis' -v ./fetchlock/
//
// Both servers run as processes of their own (vela built from this checkout, redis-server), and
// both are read by the same client: one goroutine that waits on an epoll set of 1,000 raw
// sockets, the way redis-benchmark reads its connections, so that the client's own cost stays
// small and equal on both sides.

// TestFillLatency measures, with 1,000 waiters on one key, the time from sending FETCHFILL to the
// last waiter receiving its HIT, over many rounds, and prints p50/p99.
func TestFillLatency(t *testing.T) {
	if os.Getenv("VELA_BENCH_FETCHLOCK") == "" {
		t.Skip("set VELA_BENCH_FETCHLOCK=1 to run the fill-to-last-HIT latency benchmark")
	}
	const n = 1000
	rounds := benchRounds()
	p := testproc.Start(t, testproc.Build(t), "-max_clients", strconv.Itoa(n+100))
	holder := redis.NewClient(&redis.Options{Addr: p.Addr, ReadTimeout: 30 * time.Second})
	defer holder.Close()
	fan := dialFanIn(t, p.Addr, n)
	defer fan.close()
	last := make([]time.Duration, 0, rounds)   // fill sent -> last waiter's HIT
	median := make([]time.Duration, 0, rounds) // fill sent -> median waiter's HIT
	var work cpuWork
	for round := range rounds {
		key := "bench:" + strconv.Itoa(round)
		token := mustLock(t, holder, key, "LEASE", 60000)
		fan.sendAll(t, fmt.Sprintf("*4\r\n$9\r\nFETCHLOCK\r\n$%d\r\n%s\r\n$7\r\nTIMEOUT\r\n$5\r\n30000\r\n", len(key), key))
		eventually(t, "all waiters to queue", func() bool { return infoWaiters(holder) == n })
		work.begin(p.Pid())
		start := time.Now()
		done := make(chan string, 1)
		go func() { done <- fill(holder, key, token, "value", "EX", 60) }()
		got := fan.readAll(t, hitReply)
		work.end(p.Pid())
		if msg := <-done; msg != "" {
			t.Fatalf("FETCHFILL: %s", msg)
		}
		if t.Failed() {
			return
		}
		last = append(last, got[n-1].Sub(start))
		median = append(median, got[n/2].Sub(start))
	}
	t.Logf("vela: %d rounds, %d waiters each, FETCHFILL sent -> last waiter's HIT: %s", rounds, n, percentiles(last))
	t.Logf("vela: FETCHFILL sent -> median waiter's HIT: %s", percentiles(median))
	t.Logf("vela: %s", work.report(rounds))
	logLoad(t)
}

// TestPublishLatencyRedis is TestFillLatency's reference: the same fan-out done by redis-server, a
// PUBLISH to 1,000 subscribers, measured the same way (send -> last subscriber's message) with the
// same client, on the same machine.
func TestPublishLatencyRedis(t *testing.T) {
	if os.Getenv("VELA_BENCH_FETCHLOCK") == "" {
		t.Skip("set VELA_BENCH_FETCHLOCK=1 to run the PUBLISH fan-out reference")
	}
	const n = 1000
	rounds := benchRounds()
	rs := redistest.Start(t)
	pub := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer pub.Close()
	fan := dialFanIn(t, rs.Addr, n)
	defer fan.close()
	fan.sendAll(t, "*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n")
	fan.readAll(t, "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
	const message = "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nvalue\r\n"
	last := make([]time.Duration, 0, rounds)
	median := make([]time.Duration, 0, rounds)
	var work cpuWork
	for range rounds {
		work.begin(rs.Pid())
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- pub.Publish(context.Background(), "ch", "value").Err() }()
		got := fan.readAll(t, message)
		work.end(rs.Pid())
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			return
		}
		last = append(last, got[n-1].Sub(start))
		median = append(median, got[n/2].Sub(start))
	}
	t.Logf("redis-server: %d rounds, PUBLISH to %d subscribers, sent -> last subscriber's message: %s", rounds, n, percentiles(last))
	t.Logf("redis-server: sent -> median subscriber's message: %s", percentiles(median))
	t.Logf("redis-server: %s", work.report(rounds))
	logLoad(t)
}

// hitReply is what every waiter receives once the key is filled.
const hitReply = "*2\r\n$3\r\nHIT\r\n$5\r\nvalue\r\n"

func benchRounds() int {
	if s := os.Getenv("VELA_BENCH_ROUNDS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return 100
}

// infoWaiters returns the node's fetchlock_waiters from INFO, or -1.
func infoWaiters(c *redis.Client) int {
	info, err := c.Info(context.Background(), "vela").Result()
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "fetchlock_waiters:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return -1
}

// percentiles formats the p50, p99 and max of d, which it sorts.
func percentiles(d []time.Duration) string {
	slices.Sort(d)
	pct := func(p float64) time.Duration { return d[min(len(d)-1, int(float64(len(d))*p))] }
	return fmt.Sprintf("p50 %v  p99 %v  max %v", pct(0.50), pct(0.99), d[len(d)-1])
}

func logLoad(t *testing.T) {
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average: %s", strings.TrimSpace(string(la)))
	}
}

// cpuWork adds up the CPU time the server process and this (client) process spend during the
// measured part of each round, from the kernel's per-thread run time (/proc/PID/task/*/schedstat).
// Their sum over the machine's cores is the least wall time one fan-out can take here.
type cpuWork struct {
	server, client time.Duration
}

func (w *cpuWork) begin(pid int) {
	w.server -= runTime(strconv.Itoa(pid))
	w.client -= runTime("self")
}

func (w *cpuWork) end(pid int) {
	w.server += runTime(strconv.Itoa(pid))
	w.client += runTime("self")
}

func (w *cpuWork) report(rounds int) string {
	s, c := w.server/time.Duration(rounds), w.client/time.Duration(rounds)
	return fmt.Sprintf("CPU per round: server %v, client %v; (server+client)/%d CPUs = %v",
		s.Round(time.Microsecond), c.Round(time.Microsecond), runtime.NumCPU(), ((s + c) / time.Duration(runtime.NumCPU())).Round(time.Microsecond))
}

// runTime returns the CPU time all threads of process pid ("self" for this one) have run.
func runTime(pid string) time.Duration {
	tasks, _ := filepath.Glob("/proc/" + pid + "/task/*/schedstat")
	var total time.Duration
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

// fanIn is a set of raw client sockets read by one goroutine through epoll.
type fanIn struct {
	epfd int
	fds  []int
	buf  []byte
}

// dialFanIn opens n connections to addr.
func dialFanIn(t *testing.T, addr string, n int) *fanIn {
	t.Helper()
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	sa := &unix.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	f := &fanIn{epfd: epfd, buf: make([]byte, 4096)}
	for i := range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			f.close()
			t.Fatal(err)
		}
		f.fds = append(f.fds, fd)
		if err := unix.Connect(fd, sa); err != nil {
			f.close()
			t.Fatal(err)
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)} // Fd carries the index
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			f.close()
			t.Fatal(err)
		}
	}
	return f
}

// sendAll writes req on every connection.
func (f *fanIn) sendAll(t *testing.T, req string) {
	t.Helper()
	for _, fd := range f.fds {
		if n, err := unix.Write(fd, []byte(req)); err != nil || n != len(req) {
			t.Fatalf("write: %d bytes, %v", n, err)
		}
	}
}

// readAll reads want from every connection and returns, sorted, the times at which each had
// received all of it. It fails t when a connection receives something else or nothing for 30 s.
func (f *fanIn) readAll(t *testing.T, want string) []time.Time {
	t.Helper()
	got := make([][]byte, len(f.fds))
	at := make([]time.Time, 0, len(f.fds))
	events := make([]unix.EpollEvent, 256)
	for len(at) < len(f.fds) {
		n, err := unix.EpollWait(f.epfd, events, 30000)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("epoll_wait: %d events, %v, %d of %d connections answered", n, err, len(at), len(f.fds))
		}
		for _, ev := range events[:n] {
			i := int(ev.Fd)
			r, err := unix.Read(f.fds[i], f.buf)
			if err != nil || r == 0 {
				t.Fatalf("read: %d, %v", r, err)
			}
			before := len(got[i])
			got[i] = append(got[i], f.buf[:r]...)
			if before < len(want) && len(got[i]) >= len(want) {
				at = append(at, time.Now())
			}
		}
	}
	for i, g := range got {
		if !bytes.Equal(g, []byte(want)) {
			t.Fatalf("connection %d got %q, want %q", i, g, want)
		}
	}
	return at
}

func (f *fanIn) close() {
	for _, fd := range f.fds {
		_ = unix.Close(fd)
	}
	_ = unix.Close(f.epfd)
}
