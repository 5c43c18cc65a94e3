package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// What a caller needs to follow the changes Redis makes to the keys itself (the near cache's
// invalidation channels, package nearcache): the masters that hold them, and connections of its
// own to each.

// Trackable reports whether Masters and DialMaster serve this store: one Redis, a Redis
// Cluster, or the master a Sentinel names.
func (s *Store) Trackable() bool { return s.pipe != nil || s.cluster != nil || s.sentinels != nil }

// Timeout is the deadline the store gives every call to Redis.
func (s *Store) Timeout() time.Duration { return s.timeout }

// Masters returns the addresses of the servers that hold the keys: the one Redis, every master
// of the Redis Cluster as CLUSTER SLOTS reports them now, or the master the first Sentinel that
// answers names now (SENTINEL GET-MASTER-ADDR-BY-NAME).
func (s *Store) Masters(ctx context.Context) ([]string, error) {
	switch {
	case s.pipe != nil:
		return []string{s.pipe.opt.Addr}, nil
	case s.sentinels != nil:
		return s.sentinelMaster(ctx)
	case s.cluster == nil:
		return nil, errors.New("redis store: no masters to follow")
	}
	//lint:ignore SA1019 CLUSTER SLOTS also answers Redis Clusters older than 7 (CLUSTER SHARDS is 7.0+)
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

// sentinelMaster asks the Sentinels in turn which server is the master.
func (s *Store) sentinelMaster(ctx context.Context) ([]string, error) {
	var errs []error
	for i, sc := range s.sentinels {
		hp, err := sc.GetMasterAddrByName(ctx, s.failoverOpt.MasterName).Result()
		if err == nil && len(hp) == 2 {
			return []string{net.JoinHostPort(hp[0], hp[1])}, nil
		}
		if err == nil {
			err = fmt.Errorf("unexpected reply %q", hp)
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %w", s.failoverOpt.SentinelAddrs[i], err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("redis store: no Sentinel names master %q: %w", s.failoverOpt.MasterName, errors.Join(errs...))
}

// DialMaster opens a connection of its own to addr, one of Masters, authenticated and with the
// database selected (TLS as configured).
func (s *Store) DialMaster(addr string) (net.Conn, error) {
	switch {
	case s.pipe != nil:
		o := *s.pipe.opt
		o.Addr = addr
		return dialRedis(&o, s.timeout)
	case s.sentinels != nil:
		fo := s.failoverOpt
		return dialRedis(&redis.Options{Addr: addr, Username: fo.Username, Password: fo.Password,
			DB: fo.DB, TLSConfig: fo.TLSConfig}, s.timeout)
	case s.cluster == nil:
		return nil, errors.New("redis store: no masters to follow")
	}
	co := s.clusterOpt
	return dialRedis(&redis.Options{Addr: addr, Username: co.Username, Password: co.Password,
		TLSConfig: co.TLSConfig}, s.timeout)
}
