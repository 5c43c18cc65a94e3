package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/store"
)

var _ store.PubSub = (*Store)(nil)

// Pub/Sub over the backing Redis: a Vela node on the redis store publishes there and subscribes
// its clients there, each subscribed client on a connection of its own, so that every Vela node
// in front of that Redis, and Redis's own clients, share its channels (a sidecar's PUBLISH
// reaches the subscribers of every other sidecar).

// confirmTimeout bounds the wait for Redis to confirm a subscription change.
const confirmTimeout = 5 * time.Second

// Publish publishes msg on channel (shard: a shard channel) in Redis and returns its count of
// deliveries.
func (s *Store) Publish(ctx context.Context, shard bool, channel, msg []byte) (int64, error) {
	if shard {
		return s.c.SPublish(ctx, string(channel), msg).Result()
	}
	return s.c.Publish(ctx, string(channel), msg).Result()
}

// PubSubChannels answers PUBSUB CHANNELS (shard: SHARDCHANNELS) from Redis, without the
// channels Vela's nodes use among themselves there (reservedPrefix: FETCHLOCK's), as its keys
// are kept out of KEYS.
func (s *Store) PubSubChannels(ctx context.Context, shard bool, pattern string) ([]string, error) {
	cmd := s.c.PubSubChannels
	if shard {
		cmd = s.c.PubSubShardChannels
	}
	names, err := cmd(ctx, pattern).Result()
	return slices.DeleteFunc(names, func(n string) bool { return strings.HasPrefix(n, reservedPrefix) }), err
}

// PubSubNumSub returns the subscribers of each channel (shard: shard channel), in order.
func (s *Store) PubSubNumSub(ctx context.Context, shard bool, channels []string) ([]int64, error) {
	cmd := s.c.PubSubNumSub
	if shard {
		cmd = s.c.PubSubShardNumSub
	}
	m, err := cmd(ctx, channels...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(channels))
	for i, ch := range channels {
		out[i] = m[ch]
	}
	return out, nil
}

// PubSubNumPat returns the number of patterns subscribed to in Redis.
func (s *Store) PubSubNumPat(ctx context.Context) (int64, error) {
	return s.c.PubSubNumPat(ctx).Result()
}

// Subscription is one client's subscriptions in Redis, on a connection of its own (go-redis
// re-subscribes it when it reconnects). Its methods are called by that client's commands, one
// at a time; deliver runs on the subscription's own goroutine.
type Subscription struct {
	ps       *redis.PubSub
	confirms chan *redis.Subscription
	done     chan struct{}
}

// Subscribe opens a subscription whose messages go to deliver: pattern is "" for a message to a
// channel subscription.
func (s *Store) Subscribe(deliver func(pattern, channel string, payload []byte)) store.Subscription {
	sub := &Subscription{ps: s.c.Subscribe(context.Background()), confirms: make(chan *redis.Subscription, 64),
		done: make(chan struct{})}
	go sub.receive(deliver)
	return sub
}

// receive reads the subscription's connection until it is closed.
func (sub *Subscription) receive(deliver func(pattern, channel string, payload []byte)) {
	defer close(sub.done)
	for {
		m, err := sub.ps.Receive(context.Background())
		if err != nil {
			if errors.Is(err, redis.ErrClosed) {
				return
			}
			time.Sleep(100 * time.Millisecond) // Redis is away: the next Receive dials again
			continue
		}
		switch m := m.(type) {
		case *redis.Message:
			deliver(m.Pattern, m.Channel, []byte(m.Payload))
		case *redis.Subscription:
			select {
			case sub.confirms <- m:
			default: // nobody waits (a re-subscription after a reconnect)
			}
		}
	}
}

// Change runs a (P|S)SUBSCRIBE or (P|S)UNSUBSCRIBE of names in Redis and waits for its
// confirmations, so that no message published after it is missed (SUBSCRIBE) or delivered
// (UNSUBSCRIBE). verb is Redis's name of the command; an UNSUBSCRIBE of no names drops all,
// confirmed once per name Redis held (want says how many; at least one).
func (sub *Subscription) Change(ctx context.Context, verb string, names []string, want int) error {
	var err error
	switch verb {
	case "subscribe":
		err = sub.ps.Subscribe(ctx, names...)
	case "psubscribe":
		err = sub.ps.PSubscribe(ctx, names...)
	case "unsubscribe":
		err = sub.ps.Unsubscribe(ctx, names...)
	case "punsubscribe":
		err = sub.ps.PUnsubscribe(ctx, names...)
	case "ssubscribe":
		err = sub.ps.SSubscribe(ctx, names...)
	case "sunsubscribe":
		err = sub.ps.SUnsubscribe(ctx, names...)
	default:
		return fmt.Errorf("redis store: no Pub/Sub command %q", verb)
	}
	if err != nil {
		return err
	}
	timer := time.NewTimer(confirmTimeout)
	defer timer.Stop()
	for got := 0; got < max(want, 1); {
		select {
		case m := <-sub.confirms:
			if m.Kind == verb && (len(names) == 0 || slices.Contains(names, m.Channel)) {
				got++
			}
		case <-timer.C:
			return errors.New("redis store: Redis did not confirm " + verb + " in time")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close ends the subscription and its goroutine.
func (sub *Subscription) Close() {
	_ = sub.ps.Close()
	<-sub.done
}
