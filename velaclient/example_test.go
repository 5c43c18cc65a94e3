package velaclient_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
	"github.com/vela-cache/vela/velaclient"
)

// Ten goroutines ask for the same missing key at once; the database is queried once, and every
// goroutine gets its answer.
func ExampleGetOrFetch() {
	// A Vela node on a free port (in production: the address of your Vela sidecar or cluster).
	srv, err := server.New(testnode.Config(), nil)
	if err != nil || srv.Start() != nil {
		fmt.Println("cannot start vela:", err)
		return
	}
	defer srv.Shutdown(context.Background())

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 20})
	defer rdb.Close()

	var queries atomic.Int64
	loadUser := func(ctx context.Context) ([]byte, error) {
		queries.Add(1)
		time.Sleep(50 * time.Millisecond) // the slow database
		return []byte(`{"id":42,"name":"Ada"}`), nil
	}
	opts := velaclient.Options{TTL: 10 * time.Minute, Tags: []string{"user:42"}}

	var wg sync.WaitGroup
	results := make([]string, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := velaclient.GetOrFetch(context.Background(), rdb, "user:42:profile", loadUser, opts)
			if err != nil {
				results[i] = err.Error()
				return
			}
			results[i] = string(v)
		}()
	}
	wg.Wait()
	fmt.Println(results[0])
	fmt.Println("database queries:", queries.Load())

	// The user changed: drop everything tagged with them.
	n, _ := velaclient.InvalidateTags(context.Background(), rdb, "user:42")
	fmt.Println("invalidated keys:", n)
	// Output:
	// {"id":42,"name":"Ada"}
	// database queries: 1
	// invalidated keys: 1
}
