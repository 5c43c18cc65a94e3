// Command vela runs one Vela node: a Redis-compatible cache server. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/server"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := config.Load(args, os.Environ(), os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vela:", err)
		return 2
	}
	log := newLogger(cfg.LogLevel)
	srv, err := server.New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vela:", err)
		return 2
	}
	if n := srv.Procs(); n > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(n)
		log.Info("Go processors set to the event loops' number", "gomaxprocs", n)
	}
	if err := srv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "vela:", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	var s os.Signal
	select {
	case s = <-sig:
	case <-srv.Stopped(): // SHUTDOWN
		return 0
	}
	log.Info("shutting down", "signal", s.String())
	ctx, cancel := context.WithTimeout(context.Background(), server.ShutdownTimeout)
	defer cancel()
	go func() { // a second signal cuts the drain short: the connections still open are closed
		select {
		case s := <-sig:
			log.Warn("second signal: closing the remaining connections now", "signal", s.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := srv.Shutdown(ctx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
