package commands

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// residentBytes is the process's resident set size (INFO used_memory_rss), from /proc.
func residentBytes() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/statm") // size resident shared text lib data dt, in pages
	if err != nil {
		return 0, false
	}
	fields := bytes.Fields(b)
	if len(fields) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseUint(string(fields[1]), 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * uint64(os.Getpagesize()), true
}

// systemMemory is the machine's physical memory (INFO total_system_memory).
func systemMemory() (uint64, bool) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0, false
	}
	return uint64(si.Totalram) * uint64(si.Unit), true
}
