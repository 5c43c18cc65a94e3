//go:build !unix

package commands

import "time"

// processCPU reports that this platform gives no CPU times (INFO's cpu section stays empty).
func processCPU() (sys, user time.Duration, ok bool) { return 0, 0, false }
