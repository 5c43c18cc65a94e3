package redisstore_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/store/redisstore"
	"github.com/vela-cache/vela/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t testing.TB, url string) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(redisstore.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		r := redistest.Start(t)
		return open(t, "redis://"+r.Addr+"/0")
	})
}
