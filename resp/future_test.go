package resp

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// delayed is a Later reply that answers after a while, and records whether it was flushed first.
type delayed struct {
	after   time.Duration
	reply   Reply
	flushed atomic.Bool
}

func (d *delayed) Flush() { d.flushed.Store(true) }
func (d *delayed) Reply() Reply {
	time.Sleep(d.after)
	return d.reply
}

// TestFuturesKeepOrder: replies of a pipelined batch mixing immediate and deferred replies reach
// the client in request order, each in the protocol of its own time (HELLO 3 in the middle).
func TestFuturesKeepOrder(t *testing.T) {
	var mu sync.Mutex // guards futures
	var futures []*delayed
	h := HandlerFunc(func(c *Conn, args [][]byte) Reply {
		switch strings.ToLower(string(args[0])) {
		case "slow":
			d := &delayed{after: 20 * time.Millisecond, reply: BulkString("slow:" + string(args[1]))}
			mu.Lock()
			futures = append(futures, d)
			mu.Unlock()
			return Reply{Later: d}
		case "proto3":
			c.Settle() // as Node.Exec does before any command that is not pipelined
			c.SetProto(3)
			return OK
		case "nil":
			return Nil
		}
		return Status("fast:" + string(args[1]))
	})
	s := NewServer(Config{Addr: "127.0.0.1:0"}, h)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	defer func() { _ = s.Shutdown(context.Background()) }()
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// One write: a single pipelined batch.
	_, _ = io.WriteString(nc, "SLOW a\r\nFAST b\r\nSLOW c\r\nNIL x\r\nPROTO3 x\r\nNIL x\r\nSLOW d\r\n")
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	want := []string{"$6", "slow:a", "+fast:b", "$6", "slow:c", "$-1", "+OK", "_", "$6", "slow:d"}
	for i, w := range want {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reply line %d: %v", i, err)
		}
		if got := strings.TrimRight(line, "\r\n"); got != w {
			t.Fatalf("reply line %d = %q, want %q", i, got, w)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, f := range futures {
		if !f.flushed.Load() {
			t.Fatal("a future was waited for without being flushed first")
		}
	}
}
