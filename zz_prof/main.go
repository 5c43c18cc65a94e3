package main

import (
	"os"
	"runtime/pprof"
	"time"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/server"
)

func main() {
	cfg := config.Default()
	cfg.Listen = os.Args[1]
	cfg.MetricsListen = ""
	cfg.Store.Type = "redis"
	cfg.Store.RedisURL = os.Args[2]
	srv, err := server.New(cfg, nil)
	if err != nil {
		panic(err)
	}
	if err := srv.Start(); err != nil {
		panic(err)
	}
	time.Sleep(2 * time.Second)
	f, _ := os.Create(os.Args[3])
	pprof.StartCPUProfile(f)
	time.Sleep(8 * time.Second)
	pprof.StopCPUProfile()
	f.Close()
}
