package peer

import (
	"sync/atomic"

	"github.com/vela-cache/vela/resp"
)

// Request is a request in flight: a Call, or a LoopCall sent from an event loop.
type Request interface {
	// Flush makes sure the request is on its way.
	Flush()
	// Notify arranges for fn to be called once the request has finished; false when it has
	// finished already.
	Notify(fn func()) bool
	// Result waits for the reply (a LoopCall: on its loop's goroutine only).
	Result() (resp.Reply, error)
}

// Joined is the waiting half of a reply that is ready once every one of several requests has
// finished (a write's copies to each of the other holders): it implements resp.Notifier, so
// that an event loop parks the client's connection instead of blocking on the requests, and
// resp.Flusher and resp.LoopNotifier. The type embedding it adds Reply, which reads each
// request's Result. Requests are added before the reply is handed to the connection.
type Joined struct {
	reqs   []Request
	onLoop bool         // every request is a LoopCall: each notifies on the loop's goroutine
	left   atomic.Int32 // requests not finished, plus one while Notify registers
	notify func()
	doneFn func() // done, bound once
}

// Add adds r to the requests waited for.
func (j *Joined) Add(r Request) {
	_, lc := r.(*LoopCall)
	j.onLoop = lc && (len(j.reqs) == 0 || j.onLoop)
	j.reqs = append(j.reqs, r)
}

// Requests returns the requests, in the order they were added.
func (j *Joined) Requests() []Request { return j.reqs }

// Notify implements resp.Notifier: fn is called once every request has finished, on the
// goroutine that finished the last one; false when all have finished already.
func (j *Joined) Notify(fn func()) bool {
	j.notify = fn
	if j.doneFn == nil {
		j.doneFn = j.done
	}
	j.left.Store(1)
	for _, r := range j.reqs {
		j.left.Add(1)
		if !r.Notify(j.doneFn) {
			j.left.Add(-1) // finished already
		}
	}
	return j.left.Add(-1) > 0
}

func (j *Joined) done() {
	if j.left.Add(-1) == 0 {
		j.notify()
	}
}

// NotifiesOnLoop implements resp.LoopNotifier.
func (j *Joined) NotifiesOnLoop() bool { return j.onLoop }

// Flush implements resp.Flusher: every request goes out with the rest of its batch.
func (j *Joined) Flush() {
	for _, r := range j.reqs {
		r.Flush()
	}
}
