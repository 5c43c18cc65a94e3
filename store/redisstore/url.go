package redisstore

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// target is a parsed store.redis.url.
type target struct {
	kind     string // "single", "cluster", "sentinel"
	single   *redis.Options
	cluster  *redis.ClusterOptions
	failover *redis.FailoverOptions
	metaDB   int // database holding Vela's tag bookkeeping; -1 in cluster mode
	userDB   int
	conns    int // vela_pipeline_conns, 0 for the default
}

// defaultMetaDB is where tag bookkeeping lives unless vela_meta_db says otherwise.
const defaultMetaDB = 15

// parseURL understands the URL forms documented in the package comment.
func parseURL(raw string) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("redis store: bad url: %w", err)
	}
	q := u.Query()
	metaDB := defaultMetaDB
	if v := q.Get("vela_meta_db"); v != "" {
		if metaDB, err = strconv.Atoi(v); err != nil || metaDB < 0 {
			return nil, fmt.Errorf("redis store: vela_meta_db must be a database number (got %q)", v)
		}
		q.Del("vela_meta_db")
		u.RawQuery = q.Encode()
	}
	conns := 0
	if v := q.Get("vela_pipeline_conns"); v != "" {
		if conns, err = strconv.Atoi(v); err != nil || conns < 1 || conns > 64 {
			return nil, fmt.Errorf("redis store: vela_pipeline_conns must be 1 to 64 (got %q)", v)
		}
		q.Del("vela_pipeline_conns")
		u.RawQuery = q.Encode()
	}
	scheme, mode, _ := strings.Cut(u.Scheme, "+")
	if scheme != "redis" && scheme != "rediss" && scheme != "unix" {
		return nil, fmt.Errorf("redis store: unsupported url scheme %q (redis://, rediss://, unix://, redis+cluster://, redis+sentinel://)", u.Scheme)
	}
	t := &target{}
	switch mode {
	case "":
		opt, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("redis store: %w", err)
		}
		t.kind, t.single, t.userDB = "single", opt, opt.DB
	case "cluster":
		hosts := strings.Split(u.Host, ",")
		// go-redis reads the first host from the URL and the others from addr= parameters.
		for _, h := range hosts[1:] {
			q.Add("addr", h)
		}
		u.Scheme, u.Host, u.RawQuery = scheme, hosts[0], q.Encode()
		opt, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("redis store: %w", err)
		}
		t.kind, t.cluster, metaDB = "cluster", opt, -1
	case "sentinel":
		if scheme == "unix" {
			return nil, fmt.Errorf("redis store: sentinel addresses are host:port")
		}
		path := strings.Split(strings.Trim(u.Path, "/"), "/")
		if len(path) < 1 || path[0] == "" || len(path) > 2 {
			return nil, fmt.Errorf("redis store: a sentinel url names the master: redis+sentinel://h1:26379,h2:26379/mymaster[/db]")
		}
		opt := &redis.FailoverOptions{MasterName: path[0], SentinelAddrs: strings.Split(u.Host, ",")}
		if len(path) == 2 {
			if opt.DB, err = strconv.Atoi(path[1]); err != nil {
				return nil, fmt.Errorf("redis store: bad database number %q", path[1])
			}
		}
		if u.User != nil {
			opt.Username = u.User.Username()
			opt.Password, _ = u.User.Password()
		}
		opt.SentinelPassword = q.Get("sentinel_password")
		if scheme == "rediss" {
			opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: strings.Split(opt.SentinelAddrs[0], ":")[0]}
		}
		t.kind, t.failover, t.userDB = "sentinel", opt, opt.DB
	default:
		return nil, fmt.Errorf("redis store: unsupported url scheme %q", u.Scheme)
	}
	if metaDB >= 0 && metaDB == t.userDB {
		return nil, fmt.Errorf("redis store: vela_meta_db (%d) must differ from the url's database", metaDB)
	}
	t.metaDB, t.conns = metaDB, conns
	return t, nil
}
