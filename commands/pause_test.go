package commands

import (
	"testing"
	"time"
)

// TestClientPauseWaits: a paused command waits for the pause's end or UNPAUSE, not for a
// command that the mode lets through; a client gone meanwhile ends its wait, unrun; an ended
// pause is cleared, so that later commands read one zero.
func TestClientPauseWaits(t *testing.T) {
	var p clientPause
	p.set(time.Now().Add(100*time.Millisecond).UnixNano(), false)
	if p.holds(false) || !p.holds(true) {
		t.Fatal("a WRITE pause holds reads, or lets writes through")
	}
	if !p.wait(true, nil) || p.holds(true) {
		t.Fatal("the wait did not end with the pause")
	}
	if p.until.Load() != 0 {
		t.Fatalf("an ended pause is left at %d", p.until.Load())
	}

	p.set(time.Now().Add(time.Hour).UnixNano(), true)
	woke := make(chan bool)
	go func() { woke <- p.wait(false, nil) }()
	time.Sleep(20 * time.Millisecond)
	p.end()
	if !<-woke {
		t.Fatal("UNPAUSE did not release the waiting command")
	}

	p.set(time.Now().Add(time.Hour).UnixNano(), true)
	gone := make(chan struct{})
	go func() { woke <- p.wait(false, gone) }()
	close(gone)
	if <-woke {
		t.Fatal("a client that left still runs its command")
	}
	p.set(time.Now().UnixNano()-1, false) // a shorter pause leaves the end where it was
	if !p.holds(true) || p.holds(false) {
		t.Fatal("a shorter pause ended the longer one, or did not change its mode to WRITE")
	}
	p.end()
}
