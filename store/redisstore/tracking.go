package redisstore

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// What a caller needs to follow the changes Redis makes to the keys itself (the near cache's
// invalidation channels, package nearcache): the masters that hold them, and connections of its
// own to each.

// errSentinelTracking: in Sentinel mode the master moves behind the store's back.
var errSentinelTracking = errors.New("redis store: following the masters is not supported in Sentinel mode")

// Trackable reports whether Masters and DialMaster serve this store: one Redis, or a Redis
// Cluster; not Sentinel.
func (s *Store) Trackable() bool { return s.pipe != nil || s.cluster != nil }

// Timeout is the deadline the store gives every call to Redis.
func (s *Store) Timeout() time.Duration { return s.timeout }

// Masters returns the addresses of the servers that hold the keys: the one Redis, or every
// master of the Redis Cluster as CLUSTER SLOTS reports them now.
func (s *Store) Masters(ctx context.Context) ([]string, error) {
	switch {
	case s.pipe != nil:
		return []string{s.pipe.opt.Addr}, nil
	case s.cluster == nil:
		return nil, errSentinelTracking
	}
	slots, err := s.cluster.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, s.mapErr(ctx, err)
	}
	var addrs []string
	seen := map[string]bool{}
	for _, sl := range slots {
		if len(sl.Nodes) > 0 && !seen[sl.Nodes[0].Addr] {
			seen[sl.Nodes[0].Addr] = true
			addrs = append(addrs, sl.Nodes[0].Addr)
		}
	}
	return addrs, nil
}

// DialMaster opens a connection of its own to addr, one of Masters, authenticated and with the
// database selected (TLS as configured).
func (s *Store) DialMaster(addr string) (net.Conn, error) {
	switch {
	case s.pipe != nil:
		o := *s.pipe.opt
		o.Addr = addr
		return dialRedis(&o, s.timeout)
	case s.cluster == nil:
		return nil, errSentinelTracking
	}
	co := s.clusterOpt
	return dialRedis(&redis.Options{Addr: addr, Username: co.Username, Password: co.Password,
		TLSConfig: co.TLSConfig}, s.timeout)
}
