// Package testnode runs in-process Vela nodes on free loopback ports for tests: the same
// server.Server the binary runs, with real sockets.
package testnode

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/server"
)

// Config returns the default configuration adjusted for tests: a free port, no metrics listener.
func Config() config.Config {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = ""
	return cfg
}

// Start validates cfg, runs a node and stops it when the test ends. Set VELA_TEST_LOG=1 to see
// its logs.
func Start(t testing.TB, cfg config.Config) *server.Server {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("VELA_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}

// StartDefault runs a node with Config().
func StartDefault(t testing.TB) *server.Server { return Start(t, Config()) }
