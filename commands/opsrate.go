package commands

import (
	"sync"
	"time"
)

// opsSamples is how many samples of the command count INFO's instantaneous_ops_per_sec averages
// over, taken every OpsSampleEvery: 1.6 s, as Redis's 16 samples of its 100 ms cron.
const opsSamples = 16

// OpsSampleEvery is how often the server calls SampleOps.
const OpsSampleEvery = 100 * time.Millisecond

// opsRate is a ring of the latest samples of total_commands_processed. Only SampleOps and INFO
// touch it, never the command path.
type opsRate struct {
	mu      sync.Mutex
	samples [opsSamples]opsSample
	next, n int
}

type opsSample struct {
	at    time.Duration // since the node started
	count uint64
}

// SampleOps records the command count for INFO's instantaneous_ops_per_sec, and the memory in
// use for used_memory_peak. The server calls it every OpsSampleEvery.
func (n *Node) SampleOps() {
	r := &n.ops
	r.mu.Lock()
	r.samples[r.next] = opsSample{at: time.Since(n.started), count: n.stats.Commands.Load()}
	r.next = (r.next + 1) % opsSamples
	r.n = min(r.n+1, opsSamples)
	r.mu.Unlock()
	n.notePeak(heapBytes()) // used_memory_peak, sampled as Redis's cron samples it
}

// opsPerSec is the command rate over the sampled window: 0 until two samples exist.
func (n *Node) opsPerSec() int64 {
	r := &n.ops
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n < 2 {
		return 0
	}
	newest := r.samples[(r.next+opsSamples-1)%opsSamples]
	oldest := r.samples[(r.next+opsSamples-r.n)%opsSamples]
	span := newest.at - oldest.at
	if span <= 0 {
		return 0
	}
	return int64(float64(newest.count-oldest.count) / span.Seconds())
}
