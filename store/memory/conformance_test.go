package memory_test

import (
	"testing"

	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/store/memory"
	"github.com/vela-cache/vela/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := memory.New(memory.Config{})
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
