package nearcache

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// TrackerConfig says how a Tracker reaches Redis.
type TrackerConfig struct {
	// Masters returns the addresses of the Redis servers that hold the keys: the one Redis, or
	// every master of a Redis Cluster. It is asked again every Refresh.
	Masters func(ctx context.Context) ([]string, error)
	// Dial opens a connection to the Redis at addr, authenticated and with the database
	// selected.
	Dial func(addr string) (net.Conn, error)
	// Timeout bounds the set-up of a connection, a Masters call, and how long Redis may leave a
	// PING unanswered before the channel counts as lost.
	Timeout time.Duration
	// Ping is how long a channel may stay silent before the tracker checks it with a PING
	// (default 1s). A channel that died without a word is noticed within Ping + Timeout.
	Ping time.Duration
	// Refresh is how often the masters are listed again (default 2s): a master that appears
	// (a failover, a new shard) suspends the cache until its channel is tracking.
	Refresh time.Duration
	// Log receives connection losses and recoveries (nil: none).
	Log *slog.Logger
}

// Tracker keeps a Cache coherent with Redis through client tracking in broadcasting mode: to
// each master, a connection of its own in RESP3 with CLIENT TRACKING ON BCAST, on which Redis
// pushes the name of every key that changes (whoever changed it, expiry and eviction included)
// and a null on FLUSHALL. The cache is live only while every master's channel is: when one
// drops, the cache is suspended (and emptied) until it is tracking again.
type Tracker struct {
	c      *Cache
	cfg    TrackerConfig
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	chans map[string]*channel // by master address
	down  int                 // channels not tracking
}

// Track starts a tracker for c. It owns one goroutine, and one per master, until Close.
func Track(c *Cache, cfg TrackerConfig) *Tracker {
	if cfg.Ping <= 0 {
		cfg.Ping = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tracker{c: c, cfg: cfg, cancel: cancel, done: make(chan struct{}), chans: map[string]*channel{}}
	go t.run(ctx)
	return t
}

// Close stops the tracker and its channels, suspends the cache and waits for the goroutines.
func (t *Tracker) Close() {
	t.cancel()
	<-t.done
	t.mu.Lock()
	chans := make([]*channel, 0, len(t.chans))
	for addr, ch := range t.chans {
		ch.removed = true
		chans = append(chans, ch)
		delete(t.chans, addr)
	}
	t.mu.Unlock()
	for _, ch := range chans {
		ch.stop()
	}
	t.c.Suspend()
}

// run lists the masters every Refresh and keeps one channel to each.
func (t *Tracker) run(ctx context.Context) {
	defer close(t.done)
	for {
		lctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
		addrs, err := t.cfg.Masters(lctx)
		cancel()
		if err == nil && len(addrs) > 0 {
			t.reconcile(ctx, addrs)
		} else if ctx.Err() == nil {
			t.cfg.Log.Warn("near cache: cannot list the Redis masters; keeping the channels as they are", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(t.cfg.Refresh):
		}
	}
}

// reconcile opens a channel to each new master, suspending the cache until it tracks, and
// closes the channels to servers that are no longer masters.
func (t *Tracker) reconcile(ctx context.Context, addrs []string) {
	t.mu.Lock()
	var gone []*channel
	for addr, ch := range t.chans {
		if !slices.Contains(addrs, addr) {
			gone = append(gone, ch)
			ch.removed = true
			delete(t.chans, addr)
			if !ch.up {
				t.down--
			}
		}
	}
	for _, addr := range addrs {
		if t.chans[addr] != nil {
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		ch := &channel{t: t, addr: addr, cancel: cancel, done: make(chan struct{})}
		t.chans[addr] = ch
		t.down++
		t.c.Suspend() // its keys change unseen until it tracks
		go ch.run(cctx)
	}
	if len(gone) > 0 && t.down == 0 && len(t.chans) > 0 {
		t.c.Resume() // the channels left are all tracking
	}
	t.mu.Unlock()
	for _, ch := range gone {
		ch.stop()
	}
}

// setUp records that ch is tracking (up) or not: the cache serves only while every channel is.
func (t *Tracker) setUp(ch *channel, up bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ch.removed || ch.up == up {
		return
	}
	ch.up = up
	if !up {
		t.down++
		t.c.Suspend()
		return
	}
	t.down--
	if t.down == 0 {
		t.c.Resume()
		t.cfg.Log.Info("near cache: tracking Redis; the near cache is on", "masters", len(t.chans))
	}
}
