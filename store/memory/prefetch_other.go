//go:build !amd64

package memory

import "unsafe"

// prefetch is a no-op where Vela has no prefetch instruction for the CPU.
func prefetch(unsafe.Pointer) {}
