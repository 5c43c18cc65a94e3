// Package velaclient helps Go programs use Vela's own commands through any go-redis client
// (redis.UniversalClient: a single node, a cluster or a ring).
//
// # GetOrFetch
//
// GetOrFetch is the cache-aside read with stampede protection (FETCHLOCK, see DESIGN.md §3 and
// docs/fetchlock.md): it returns the cached value when there is one; otherwise exactly one caller
// across all processes runs fetch and fills the key, while the others wait for that value instead
// of hitting the source too.
//
//	v, err := velaclient.GetOrFetch(ctx, rdb, "user:42", loadUser, velaclient.Options{TTL: time.Minute})
//
// # Connections
//
// A waiting GetOrFetch holds one pool connection for up to Options.Timeout, and the filler needs
// one more to fill. Size the client's pool above the number of GetOrFetch calls that may wait at
// once (go-redis's default is 10 per CPU), or the filler queues behind the waiters. Keep
// Options.Timeout below the client's ReadTimeout (go-redis default 3 s), or the client gives up on
// the connection before the server answers.
package velaclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// OnTimeout says what GetOrFetch does when FETCHLOCK answers TIMEOUT: another caller held the
// lease for the whole wait and the key did not appear.
type OnTimeout uint8

const (
	// FetchAnyway runs fetch without the lease and returns its value without caching it (only a
	// lease holder may fill). The source sees one extra call per timed-out caller. The default.
	FetchAnyway OnTimeout = iota
	// ReturnError returns ErrLockTimeout without calling fetch.
	ReturnError
)

// Options tune GetOrFetch. The zero value is usable: no TTL, no tags, a 2 s wait, the server's
// lease length, no early refresh, fetch anyway on timeout.
type Options struct {
	// TTL is the expiry of the filled key (FETCHFILL PX); 0 leaves it to the server's default_ttl.
	TTL time.Duration
	// Tags are the filled key's tags (FETCHFILL … TAGS), for InvalidateTags.
	Tags []string
	// Timeout is the longest this call waits for another caller's fill (FETCHLOCK TIMEOUT);
	// 0 means 2 s. Keep it below the client's ReadTimeout.
	Timeout time.Duration
	// Lease is how long this caller may take to fetch and fill before the lease passes to a
	// waiter (FETCHLOCK LEASE); 0 means the server's stampede_timeout.
	Lease time.Duration
	// Refresh asks for early refresh (FETCHLOCK REFRESH): the one caller that finds the key
	// within Refresh of its expiry refetches it while everyone else keeps reading the cached
	// value, so a hot key never expires under its readers. 0 disables it.
	Refresh time.Duration
	// BackgroundRefresh makes that caller return the cached value at once and refetch in a new
	// goroutine, bounded by Lease (or 5 s) through its context, so no caller pays for the refresh.
	// By default the caller refetches inline and returns the fresh value (or, if fetch fails, the
	// still-valid cached one).
	BackgroundRefresh bool
	// OnTimeout is what to do when the wait times out.
	OnTimeout OnTimeout
}

// Errors GetOrFetch returns besides those of fetch and of the client.
var (
	// ErrLockTimeout: another caller held the lease for the whole wait (with OnTimeout =
	// ReturnError).
	ErrLockTimeout = errors.New("velaclient: timed out waiting for another caller to fill the key")
	// ErrNotCached wraps a failure to fill the key after fetch succeeded; GetOrFetch then returns
	// the fetched value along with the error.
	ErrNotCached = errors.New("velaclient: fetched value not cached")
)

const (
	defaultTimeout = 2 * time.Second
	// cleanupTimeout bounds the FETCHRELEASE sent after a failed fetch, which must run even when
	// the caller's context has ended (often the reason the fetch failed).
	cleanupTimeout = 2 * time.Second
	// defaultRefreshBound bounds a background refresh when Options.Lease is 0.
	defaultRefreshBound = 5 * time.Second
)

// GetOrFetch returns key's value from the cache, or runs fetch to produce it while holding the
// key's fetch lease and caches the result (with opts.TTL and opts.Tags). Among all concurrent
// callers for a missing key, across processes, one runs fetch; the others wait for its fill and
// return the cached value. If fetch fails, its error is returned and the lease is released so
// that a waiting caller can try. A fill refused because the key was written meanwhile (STALE) is
// not an error: the fetched value is returned and the newer cached one stays.
func GetOrFetch(ctx context.Context, client redis.UniversalClient, key string,
	fetch func(ctx context.Context) ([]byte, error), opts Options) ([]byte, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	args := []any{"FETCHLOCK", key, "TIMEOUT", millis(timeout)}
	if opts.Lease > 0 {
		args = append(args, "LEASE", millis(opts.Lease))
	}
	if opts.Refresh > 0 {
		args = append(args, "REFRESH", millis(opts.Refresh))
	}
	reply, err := client.Do(ctx, args...).Slice()
	if err != nil {
		return nil, err
	}
	status, value, token, err := parseLock(reply)
	if err != nil {
		return nil, err
	}
	switch status {
	case "HIT":
		return value, nil
	case "LOCKED":
		return fetchAndFill(ctx, client, key, token, fetch, opts)
	case "REFRESH":
		if opts.BackgroundRefresh {
			bound := opts.Lease
			if bound <= 0 {
				bound = defaultRefreshBound
			}
			go func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bound)
				defer cancel()
				_, _ = fetchAndFill(rctx, client, key, token, fetch, opts)
			}()
			return value, nil
		}
		fresh, err := fetchAndFill(ctx, client, key, token, fetch, opts)
		if err != nil && !errors.Is(err, ErrNotCached) {
			return value, nil // the cached value is still live; the next caller in the window retries
		}
		return fresh, nil
	case "TIMEOUT":
		if opts.OnTimeout == ReturnError {
			return nil, ErrLockTimeout
		}
		return fetch(ctx)
	}
	return nil, fmt.Errorf("velaclient: unexpected FETCHLOCK reply %q", status)
}

// fetchAndFill runs fetch under the lease token holds and fills the key, or releases the lease
// when fetch fails.
func fetchAndFill(ctx context.Context, client redis.UniversalClient, key, token string,
	fetch func(ctx context.Context) ([]byte, error), opts Options) ([]byte, error) {
	v, err := fetch(ctx)
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		// A STALE answer means the lease had ended anyway; either way the next caller proceeds.
		_ = client.Do(rctx, "FETCHRELEASE", key, token).Err()
		return nil, err
	}
	args := []any{"FETCHFILL", key, token, v}
	if opts.TTL > 0 {
		args = append(args, "PX", millis(opts.TTL))
	}
	if len(opts.Tags) > 0 {
		args = append(args, "TAGS")
		for _, t := range opts.Tags {
			args = append(args, t)
		}
	}
	if err := client.Do(ctx, args...).Err(); err != nil && !IsStale(err) {
		return v, fmt.Errorf("%w: %w", ErrNotCached, err)
	}
	return v, nil
}

// parseLock decodes a FETCHLOCK reply: [status, value-or-token-or-nil] or [REFRESH, value, token].
func parseLock(reply []any) (status string, value []byte, token string, err error) {
	if len(reply) < 2 {
		return "", nil, "", fmt.Errorf("velaclient: malformed FETCHLOCK reply %v", reply)
	}
	status, _ = reply[0].(string)
	second, _ := reply[1].(string)
	switch status {
	case "HIT":
		return status, []byte(second), "", nil
	case "LOCKED":
		return status, nil, second, nil
	case "REFRESH":
		if len(reply) < 3 {
			return "", nil, "", fmt.Errorf("velaclient: malformed FETCHLOCK reply %v", reply)
		}
		token, _ = reply[2].(string)
		return status, []byte(second), token, nil
	}
	return status, nil, "", nil
}

// IsStale reports whether err is Vela's STALE reply: a FETCHFILL or FETCHRELEASE whose lease had
// already ended.
func IsStale(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "STALE ")
}

// SetWithTags writes key with tags (SET key value [PX ttl] TAGS tag …), replacing its value and
// tags. ttl 0 means the server's default_ttl.
func SetWithTags(ctx context.Context, client redis.UniversalClient, key string, value []byte, ttl time.Duration, tags ...string) error {
	args := []any{"SET", key, value}
	if ttl > 0 {
		args = append(args, "PX", millis(ttl))
	}
	if len(tags) > 0 {
		args = append(args, "TAGS")
		for _, t := range tags {
			args = append(args, t)
		}
	}
	return client.Do(ctx, args...).Err()
}

// InvalidateTags deletes every key carrying any of tags, cluster-wide (TAGINVALIDATE), and
// returns how many keys were deleted.
func InvalidateTags(ctx context.Context, client redis.UniversalClient, tags ...string) (int64, error) {
	if len(tags) == 0 {
		return 0, errors.New("velaclient: InvalidateTags needs at least one tag")
	}
	args := make([]any, 0, 1+len(tags))
	args = append(args, "TAGINVALIDATE")
	for _, t := range tags {
		args = append(args, t)
	}
	return client.Do(ctx, args...).Int64()
}

// millis returns d in whole milliseconds, at least 1.
func millis(d time.Duration) int64 { return max(d.Milliseconds(), 1) }
