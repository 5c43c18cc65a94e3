//go:build !linux

package commands

// residentBytes reports no resident set size where /proc/self/statm does not exist; INFO then
// leaves used_memory_rss out.
func residentBytes() (uint64, bool) { return 0, false }

// systemMemory reports no physical memory size where Sysinfo does not exist; INFO then leaves
// total_system_memory out.
func systemMemory() (uint64, bool) { return 0, false }
