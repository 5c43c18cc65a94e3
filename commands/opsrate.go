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
	at      time.Duration // since the node started
	count   uint64
	in, out uint64 // network bytes (Clients.NetStats)
}

// SampleOps records the command count for INFO's instantaneous_ops_per_sec, and the memory in
// use for used_memory_peak. The server calls it every OpsSampleEvery.
func (n *Node) SampleOps() {
	r := &n.ops
	r.mu.Lock()
	smp := opsSample{at: time.Since(n.started), count: n.stats.Commands.Load()}
	if n.clients != nil {
		smp.in, smp.out, _ = n.clients.NetStats()
	}
	r.samples[r.next] = smp
	r.next = (r.next + 1) % opsSamples
	r.n = min(r.n+1, opsSamples)
	r.mu.Unlock()
	n.notePeak(heapBytes()) // used_memory_peak, sampled as Redis's cron samples it
}

// opsPerSec is the command rate over the sampled window: 0 until two samples exist.
func (n *Node) opsPerSec() int64 {
	return int64(n.rate(func(s opsSample) uint64 { return s.count }))
}

// netKbps are INFO's instantaneous_input_kbps and instantaneous_output_kbps: the network rates
// over the sampled window, in KiB per second, as Redis's.
func (n *Node) netKbps() (in, out float64) {
	return n.rate(func(s opsSample) uint64 { return s.in }) / 1024, n.rate(func(s opsSample) uint64 { return s.out }) / 1024
}

// rate is the per-second rate of a sampled counter over the window: 0 until two samples exist.
func (n *Node) rate(of func(opsSample) uint64) float64 {
	r := &n.ops
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n < 2 {
		return 0
	}
	newest := r.samples[(r.next+opsSamples-1)%opsSamples]
	oldest := r.samples[(r.next+opsSamples-r.n)%opsSamples]
	span := newest.at - oldest.at
	if span <= 0 || of(newest) < of(oldest) {
		return 0
	}
	return float64(of(newest)-of(oldest)) / span.Seconds()
}
