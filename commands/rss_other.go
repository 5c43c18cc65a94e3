//go:build !linux

package commands

// residentBytes reports no resident set size where /proc/self/statm does not exist; INFO then
// leaves used_memory_rss out.
func residentBytes() (uint64, bool) { return 0, false }
