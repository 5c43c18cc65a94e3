package memory

import "unsafe"

// prefetch asks the CPU to bring the cache line at p into its caches, without waiting for it:
// a hint that never faults and orders nothing (PREFETCHT0).
//
//go:noescape
func prefetch(p unsafe.Pointer)
