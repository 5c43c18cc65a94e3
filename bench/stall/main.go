//go:build unix

// Command stall measures what a member that stops answering costs the clients of another: it
// starts a 3-member partitioned cluster of the given vela binary (LAN gossip timings, so that
// the stopped member is not declared dead during a short stop), writes 10,000 keys, runs 20
// clients doing GETs and SETs of random keys through member 1, stops member 2 with SIGSTOP for
// -stop, continues it, and prints the requests, errors and latencies of the stop.
//
//	go build -o /tmp/vela . && go run ./bench/stall -bin /tmp/vela -replicas 2
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// freePort returns a loopback port nothing listens on.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "stall:", err)
	os.Exit(1)
}

func main() {
	bin := flag.String("bin", "", "the vela binary")
	replicas := flag.Int("replicas", 2, "cluster.replicas")
	stop := flag.Duration("stop", 3*time.Second, "how long member 2 stays stopped")
	flag.Parse()
	if *bin == "" {
		fail(fmt.Errorf("-bin is required"))
	}
	var procs []*exec.Cmd
	var addrs, gossips []string
	// stopAll ends the members. It runs before anything is printed (a reader that stops early,
	// like head, must not leave them running) and on every failure.
	stopAll := func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGCONT)
			_ = p.Process.Kill()
			_, _ = p.Process.Wait()
		}
	}
	defer stopAll()
	abort := func(err error) {
		stopAll()
		fail(err)
	}
	for i := 0; i < 3; i++ {
		a := "127.0.0.1:" + strconv.Itoa(freePort())
		g := "127.0.0.1:" + strconv.Itoa(freePort())
		args := []string{"-listen", a, "-metrics_listen=", "-topology.type", "partitioned", "-cluster.node_name", fmt.Sprint("s", i+1),
			"-cluster.gossip_listen", g, "-cluster.gossip_profile", "lan", "-cluster.replicas", strconv.Itoa(*replicas)}
		if i > 0 {
			args = append(args, "-cluster.join", gossips[0])
		}
		cmd := exec.Command(*bin, args...)
		if err := cmd.Start(); err != nil {
			abort(err)
		}
		procs = append(procs, cmd)
		addrs, gossips = append(addrs, a), append(gossips, g)
		time.Sleep(300 * time.Millisecond)
	}
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: addrs[0], PoolSize: 40, ReadTimeout: 5 * time.Second, MaxRetries: -1})
	// Wait for a ring of 3 whose handoff windows have closed (commands then run on the loops).
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if time.Now().After(deadline) {
			abort(fmt.Errorf("the cluster did not settle"))
		}
		info, _ := c.Info(ctx, "vela").Result()
		if strings.Contains(info, "cluster_members:3") && strings.Contains(info, "cluster_handoff_window:0") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for i := 0; i < 10000; i++ {
		if err := c.Set(ctx, "k"+strconv.Itoa(i), "v", 0).Err(); err != nil {
			abort(err)
		}
	}
	type sample struct {
		at, lat time.Duration
		err     bool
	}
	var mu sync.Mutex
	var samples []sample
	start := time.Now()
	end := start.Add(1*time.Second + *stop + time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			for time.Now().Before(end) {
				k := "k" + strconv.Itoa(r.Intn(10000))
				t0 := time.Now()
				var err error
				if r.Intn(2) == 0 {
					err = c.Get(ctx, k).Err()
				} else {
					err = c.Set(ctx, k, "v", 0).Err()
				}
				if err == redis.Nil {
					err = nil
				}
				mu.Lock()
				samples = append(samples, sample{t0.Sub(start), time.Since(t0), err != nil})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	_ = procs[1].Process.Signal(syscall.SIGSTOP)
	time.Sleep(*stop)
	_ = procs[1].Process.Signal(syscall.SIGCONT)
	wg.Wait()
	info, _ := c.Info(ctx, "vela").Result()
	_ = c.Close()
	stopAll()
	var lats []time.Duration
	n, errs, slow := 0, 0, 0
	for _, s := range samples {
		if s.at < time.Second || s.at > time.Second+*stop {
			continue
		}
		n++
		if s.err {
			errs++
		}
		if s.lat > 500*time.Millisecond {
			slow++
		}
		lats = append(lats, s.lat)
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[int(float64(len(lats)-1)*p)]
	}
	fmt.Printf("during the %v stop: %d requests (%.0f/s), %d errors, %d over 500 ms, p50 %v p99 %v max %v\n",
		*stop, n, float64(n)/stop.Seconds(), errs, slow, pct(0.5), pct(0.99), pct(1))
	for _, l := range strings.Split(info, "\n") {
		if strings.Contains(l, "failed_fast") || strings.Contains(l, "not_answering") || strings.Contains(l, "cluster_members") {
			fmt.Println(" ", strings.TrimSpace(l))
		}
	}
}
