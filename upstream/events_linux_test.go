package upstream

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The event bits this package spells out are epoll's.
func TestEventBits(t *testing.T) {
	if evIn != unix.EPOLLIN || evOut != unix.EPOLLOUT || evErr != unix.EPOLLERR || evHup != unix.EPOLLHUP || evRdHup != unix.EPOLLRDHUP {
		t.Fatal("event bits differ from epoll's")
	}
}
