package resp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A connection the event loop serves is in no poller but the loop's, and has one descriptor;
// while a goroutine serves it, the runtime's poller has it too; given back, it leaves that
// poller again. Checked in /proc: which epoll instances list the socket's inode.
func TestLoopSocketLeavesRuntimePoller(t *testing.T) {
	srv := NewServer(Config{Addr: "127.0.0.1:0", EventLoops: 1}, HandlerFunc(func(c *Conn, args [][]byte) Reply {
		if strings.EqualFold(string(args[0]), "NAP") {
			time.Sleep(10 * time.Millisecond)
		}
		return Status("PONG")
	}))
	srv.inliner = declineNap{srv.handler}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	send := func(cmd string) {
		t.Helper()
		if _, err := fmt.Fprintf(nc, "%s\r\n", cmd); err != nil {
			t.Fatal(err)
		}
		if line, err := br.ReadString('\n'); err != nil || line != "+PONG\r\n" {
			t.Fatalf("%s: %q, %v", cmd, line, err)
		}
	}
	waitLoopHeld := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); srv.loopHeld() != n; time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("event loop holds %d connections, want %d", srv.loopHeld(), n)
			}
		}
	}
	send("PING")
	waitLoopHeld(1)
	var sk *sock
	srv.Clients(func(c *Conn) { sk, _ = c.nc.(*sock) })
	if sk == nil {
		t.Fatal("the loop's connection has no sock")
	}
	srv.mu.Lock()
	loopEp := srv.loopList[0].epfd
	srv.mu.Unlock()
	ino := socketInode(t, sk.fd)

	check := func(when string, wantFDs int, wantRuntime bool) {
		t.Helper()
		fds, eps := socketUse(t, ino)
		inLoop, inRuntime := false, false
		for _, ep := range eps {
			if ep == loopEp {
				inLoop = true
			} else {
				inRuntime = true
			}
		}
		if fds != wantFDs || inLoop == wantRuntime || inRuntime != wantRuntime {
			t.Errorf("%s: %d descriptors (want %d), in the loop's epoll %v, in another %v (want %v)",
				when, fds, wantFDs, inLoop, inRuntime, wantRuntime)
		}
	}
	check("on the loop", 1, false)
	send("NAP") // declined by the loop: a goroutine serves the connection
	waitLoopHeld(0)
	check("on a goroutine", 2, true)
	for range giveBackAfter {
		send("PING")
	}
	waitLoopHeld(1)
	check("back on the loop", 1, false)
	send("PING")
}

// declineNap runs on the loop every command but NAP.
type declineNap struct{ h Handler }

func (d declineNap) TryServeRESP(c *Conn, args [][]byte) (Reply, bool) {
	if strings.EqualFold(string(args[0]), "NAP") {
		return Reply{}, false
	}
	return d.h.ServeRESP(c, args), true
}

// socketInode is the inode of the socket behind fd.
func socketInode(t *testing.T, fd int) uint64 {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
	if err != nil {
		t.Fatalf("%d is %q, not a socket", fd, link)
	}
	return ino
}

// socketUse counts the process's descriptors of the socket with inode ino, and lists the epoll
// instances (by descriptor) that watch it.
func socketUse(t *testing.T, ino uint64) (fds int, epolls []int) {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("socket:[%d]", ino)
	hexIno := strconv.FormatUint(ino, 16)
	for _, e := range entries {
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // closed meanwhile (ReadDir's own descriptor)
		}
		switch link {
		case want:
			fds++
		case "anon_inode:[eventpoll]":
			info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(info), "\n") {
				if f := strings.Fields(line); len(f) > 0 && f[0] == "tfd:" && strings.Contains(line, " ino:"+hexIno+" ") {
					n, _ := strconv.Atoi(e.Name())
					epolls = append(epolls, n)
					break
				}
			}
		}
	}
	return fds, epolls
}

// Blocking loops hold a processor each, so a process has them only while they leave the
// runtime at least one: a second server beside a blocking loop parks its loop in the scheduler,
// and a loop's end gives its processor back.
func TestBlockingLoopsLeaveAProcessor(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two processors")
	}
	if n := blockingLoops.Load(); n != 0 {
		t.Fatalf("%d blocking loops before the test", n)
	}
	procs := runtime.GOMAXPROCS(0)
	start := func() *Server {
		t.Helper()
		srv := NewServer(Config{Addr: "127.0.0.1:0", EventLoops: procs - 1},
			HandlerFunc(func(*Conn, [][]byte) Reply { return Status("PONG") }))
		srv.inliner = declineNap{srv.handler}
		if err := srv.Listen(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve() }()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			srv.mu.Lock()
			n := len(srv.loopList)
			srv.mu.Unlock()
			if n > 0 {
				return srv
			}
			if time.Now().After(deadline) {
				t.Fatal("the server started no loop")
			}
		}
	}
	stop := func(srv *Server) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}
	blocking := func(srv *Server) bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.loopList[0].blocking
	}
	a := start()
	b := start()
	if !blocking(a) || blocking(b) {
		t.Errorf("first server's loops blocking %v (want true), second's %v (want false)", blocking(a), blocking(b))
	}
	stop(a)
	stop(b)
	if n := blockingLoops.Load(); n != 0 {
		t.Fatalf("%d blocking loops counted after both servers stopped", n)
	}
	c := start()
	defer stop(c)
	if !blocking(c) {
		t.Error("a server started after the others stopped did not get blocking loops")
	}
	// A goroutine and a garbage collection still run beside the blocking loop.
	done := make(chan struct{})
	go func() { runtime.GC(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a garbage collection did not finish beside a blocking loop")
	}
}
