//go:build unix

package commands

import (
	"syscall"
	"time"
)

// processCPU returns the system and user CPU time the process has used, for INFO's cpu section.
func processCPU() (sys, user time.Duration, ok bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0, false
	}
	return time.Duration(ru.Stime.Nano()), time.Duration(ru.Utime.Nano()), true
}
