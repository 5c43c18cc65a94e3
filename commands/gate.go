package commands

import "sync"

// gateStripes is how many locks a gate spreads its readers over. Connections are dealt to them
// in turn, so two event loops rarely share one and a command's read lock stays on a cache line
// few other cores write.
const gateStripes = 16

// gate keeps EXEC's commands from interleaving with any other command on the node. Every
// command that reads or writes the keyspace holds one stripe's read lock while it runs; EXEC
// takes every stripe's write lock, so it waits for the commands running and holds back the
// next ones until its own are done, the isolation Redis gets from running one command at a
// time. A striped lock instead of one RWMutex: a read lock costs an uncontended atomic on a
// line of its own instead of one every core writes.
type gate struct {
	stripes [gateStripes]struct {
		sync.RWMutex
		_ [64 - 24]byte // one stripe per cache line
	}
}

// rlock takes stripe i's read lock.
func (g *gate) rlock(i uint8) { g.stripes[i].RLock() }

// runlock releases stripe i's read lock.
func (g *gate) runlock(i uint8) { g.stripes[i].RUnlock() }

// lock takes every stripe's write lock, in order, so two EXECs cannot deadlock.
func (g *gate) lock() {
	for i := range g.stripes {
		g.stripes[i].Lock()
	}
}

// unlock releases what lock took.
func (g *gate) unlock() {
	for i := range g.stripes {
		g.stripes[i].Unlock()
	}
}
