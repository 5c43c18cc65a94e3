package slowlog

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func args(list ...string) [][]byte {
	out := make([][]byte, len(list))
	for i, a := range list {
		out[i] = []byte(a)
	}
	return out
}

// TestKeepsTheNewest: a log of 3 that took 7 commands keeps the last 3, newest first, with ids
// counting every command logged; Get's count is capped at what is kept; Reset empties it and
// ids go on.
func TestKeepsTheNewest(t *testing.T) {
	l := New(0, 3)
	for i := range 7 {
		l.Add(args("SET", fmt.Sprint(i)), time.Millisecond, "1.2.3.4:5", "", nil)
	}
	got := l.Get(-1)
	if len(got) != 3 || l.Len() != 3 {
		t.Fatalf("kept %d (Len %d), want 3", len(got), l.Len())
	}
	for i, e := range got {
		if want := int64(6 - i); e.ID != want || string(e.Args[1]) != fmt.Sprint(want) {
			t.Errorf("entry %d: id %d, args %q; want id %d", i, e.ID, e.Args, want)
		}
	}
	if got := l.Get(2); len(got) != 2 || got[0].ID != 6 || got[1].ID != 5 {
		t.Errorf("Get(2) = %+v", got)
	}
	if got := l.Get(100); len(got) != 3 {
		t.Errorf("Get(100) returned %d entries", len(got))
	}
	l.Reset()
	if l.Len() != 0 || len(l.Get(-1)) != 0 {
		t.Fatalf("after Reset: Len %d", l.Len())
	}
	l.Add(args("GET", "k"), time.Millisecond, "a", "n", nil)
	if got := l.Get(-1); len(got) != 1 || got[0].ID != 7 || got[0].Client != "a" || got[0].ClientID != "n" {
		t.Errorf("after Reset: %+v, want id 7", got)
	}
}

// TestThreshold: -1 logs nothing and reports the log off, 0 logs every command, otherwise a
// command logs when it ran at least that many microseconds; a log of length 0 keeps nothing.
func TestThreshold(t *testing.T) {
	if l := New(-1, 10); l.On() || l.Slow(time.Hour) {
		t.Error("threshold -1: on, or an hour is slow")
	}
	if l := New(-5, 10); l.On() {
		t.Error("threshold -5: on")
	}
	if l := New(0, 10); !l.On() || !l.Slow(0) {
		t.Error("threshold 0: zero is not slow")
	}
	l := New(1000, 10)
	if l.Slow(999*time.Microsecond) || !l.Slow(time.Millisecond) {
		t.Error("threshold 1000 µs: 999 µs slow or 1000 µs not")
	}
	var off *Log
	if off.On() {
		t.Error("nil log is on")
	}
	empty := New(0, 0)
	empty.Add(args("GET", "k"), 0, "a", "", nil)
	if empty.Len() != 0 {
		t.Error("a log of length 0 kept an entry")
	}
}

// TestShortens: arguments past 32 and bytes past 128 are cut as Redis cuts them, redacted
// arguments are replaced, and the entry never aliases the caller's arguments.
func TestShortens(t *testing.T) {
	l := New(0, 10)
	long := make([]string, 40)
	for i := range long {
		long[i] = fmt.Sprint(i)
	}
	long[1] = strings.Repeat("x", 200)
	in := args(long...)
	l.Add(in, 0, "a", "", func(i int) bool { return i == 2 })
	in[0][0] = 'Z'
	e := l.Get(1)[0]
	if len(e.Args) != 32 {
		t.Fatalf("%d arguments kept, want 32", len(e.Args))
	}
	if got := string(e.Args[31]); got != "... (9 more arguments)" {
		t.Errorf("last argument %q", got)
	}
	if got, want := string(e.Args[1]), strings.Repeat("x", 128)+"... (72 more bytes)"; got != want {
		t.Errorf("long argument %q", got)
	}
	if string(e.Args[2]) != "(redacted)" || string(e.Args[0]) != "0" || string(e.Args[30]) != "30" {
		t.Errorf("arguments %q", e.Args)
	}
}

// TestResize: SetMax keeps the newest entries that fit, in order, whether the ring had wrapped
// or not, and the log goes on filling and wrapping at the new length; SetThreshold turns the log
// off and on.
func TestResize(t *testing.T) {
	l := New(0, 5)
	add := func(from, to int) {
		for i := from; i < to; i++ {
			l.Add(args("SET", fmt.Sprint(i)), time.Millisecond, "a", "", nil)
		}
	}
	ids := func() string {
		var b strings.Builder
		for _, e := range l.Get(-1) {
			fmt.Fprintf(&b, "%d ", e.ID)
		}
		return b.String()
	}
	add(0, 8) // wrapped: 7 6 5 4 3
	l.SetMax(3)
	if got := ids(); got != "7 6 5 " {
		t.Errorf("shrunk to 3: %s", got)
	}
	add(8, 10)
	if got := ids(); got != "9 8 7 " {
		t.Errorf("after two more: %s", got)
	}
	l.SetMax(6)
	add(10, 14)
	if got := ids(); got != "13 12 11 10 9 8 " {
		t.Errorf("grown to 6 and filled: %s", got)
	}
	l.SetMax(0)
	add(14, 15)
	if got := ids(); got != "" || l.Len() != 0 {
		t.Errorf("length 0: %q", got)
	}
	l.SetMax(2)
	l.SetThreshold(-1)
	if l.On() || l.Slow(time.Hour) {
		t.Error("threshold -1 still logs")
	}
	l.SetThreshold(1000)
	if !l.Slow(time.Millisecond) || l.Slow(999*time.Microsecond) {
		t.Error("threshold 1000 µs misjudges")
	}
}
