package e2e_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestBitsKeepEntries: SETBIT and BITFIELD change a value in place on every store and topology:
// the key keeps its expiry and its tags, a near cache's copy goes, and every holder of the key
// holds the new value. BITFIELD's 64-bit replies are exact on the redis store too (Redis's own
// would pass through Lua's doubles there). BITOP writes its destination whole: no expiry, no
// tags; with empty sources it deletes it. A key a BITFIELD creates without writing a bit
// (OVERFLOW FAIL) exists on every holder, as in Redis. Keys on two owners of a partitioned cluster get
// CROSSSLOT, as in Redis Cluster.
func TestBitsKeepEntries(t *testing.T) {
	for name, setup := range everyPlacement() {
		t.Run(name, func(t *testing.T) {
			nodes, tag := setup(t)
			c := respclient.Dial(t, nodes[0].Addr())
			k := func(s string) string { return tag + s }
			c.Do("SET", k("a"), "\x00", "PX", "100000", "TAGS", "t1").OK()
			reader := respclient.Dial(t, nodes[len(nodes)-1].Addr())
			reader.Do("GET", k("a")).Bulk("\x00")
			reader.Do("GET", k("a")).Bulk("\x00") // a near cache keeps a copy now
			c.Do("SETBIT", k("a"), "7", "1").Int(0)
			for deadline := time.Now().Add(2 * time.Second); reader.Do("GET", k("a")).Value.Text() != "\x01"; {
				if time.Now().After(deadline) {
					t.Fatal("the old value is still read through the last member after 2 s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			c.Do("GETBIT", k("a"), "7").Int(1)
			c.Do("PTTL", k("a")).IntBetween(90000, 100000)
			// -(2^63-1) - 5 wraps to 2^63-4; INCRBY answers the new value, SET the old one.
			c.Do("BITFIELD", k("a"), "SET", "u8", "8", "255", "INCRBY", "i64", "16", "-9223372036854775807",
				"INCRBY", "i64", "16", "-5", "OVERFLOW", "FAIL", "INCRBY", "u8", "8", "1").
				Raws("*4\r\n:0\r\n:-9223372036854775807\r\n:9223372036854775804\r\n$-1\r\n")
			c.Do("BITFIELD_RO", k("a"), "GET", "u8", "8", "GET", "i64", "16").Raws("*2\r\n:255\r\n:9223372036854775804\r\n")
			want := "\x01\xff\x7f\xff\xff\xff\xff\xff\xff\xfc"
			c.Do("GET", k("a")).Bulk(want)
			c.Do("BITCOUNT", k("a")).Int(1 + 8 + 63 - 2)
			c.Do("BITPOS", k("a"), "0", "1").Int(16)
			c.Do("PTTL", k("a")).IntBetween(90000, 100000)
			checkHolders(t, nodes, k("a"), want)
			c.Do("TAGINVALIDATE", "t1").Int(1) // the tags stayed through SETBIT and BITFIELD
			checkHolders(t, nodes, k("a"), "")
			// A BITFIELD whose writes OVERFLOW FAIL refused still creates the key, as in Redis:
			// on every holder.
			c.Do("BITFIELD", k("g"), "OVERFLOW", "FAIL", "INCRBY", "u2", "0", "5").Raws("*1\r\n$-1\r\n")
			c.Do("OBJECT", "ENCODING", k("g")).Bulk("raw")
			checkHolders(t, nodes, k("g"), "\x00")

			c.Do("SET", k("b"), "\xf0", "TAGS", "t2").OK()
			c.Do("SET", k("c"), "\x0f\x01").OK()
			c.Do("SET", k("d"), "zz", "PX", "100000", "TAGS", "t3").OK()
			c.Do("BITOP", "OR", k("d"), k("b"), k("c")).Int(2)
			c.Do("GET", k("d")).Bulk("\xff\x01")
			c.Do("PTTL", k("d")).Int(-1)
			c.Do("TAGINVALIDATE", "t3").Int(0)
			checkHolders(t, nodes, k("d"), "\xff\x01")
			c.Do("BITOP", "AND", k("d"), k("nosuch")).Int(0)
			c.Do("EXISTS", k("d")).Int(0)
			checkHolders(t, nodes, k("d"), "")
			c.Do("TAGINVALIDATE", "t2").Int(1)

			if len(nodes) > 1 && nodes[0].Cluster() != nil {
				other := otherOwner(nodes[0], tag)
				c.Do("BITOP", "XOR", k("e"), other).Err("CROSSSLOT Keys in request don't hash to the same slot")
			}
		})
	}
}

// TestBitsDefaultTTL: a key SETBIT or BITFIELD creates gets default_ttl, as any write that
// creates a key does; one they change keeps the expiry it has; BITOP's result gets it, as SET's
// value does.
func TestBitsDefaultTTL(t *testing.T) {
	for _, storeType := range []string{"memory", "redis"} {
		t.Run(storeType, func(t *testing.T) {
			cfg := testnode.Config()
			cfg.DefaultTTL = 100 * time.Second
			if storeType == "redis" {
				cfg.Store.Type, cfg.Store.RedisURL = "redis", "redis://"+redistest.Start(t).Addr+"/0"
			}
			c := respclient.Dial(t, testnode.Start(t, cfg).Addr())
			c.Do("SETBIT", "a", "3", "1").Int(0)
			c.Do("PTTL", "a").IntBetween(90000, 100000)
			c.Do("BITFIELD", "b", "SET", "u8", "0", "1").Raws("*1\r\n:0\r\n")
			c.Do("PTTL", "b").IntBetween(90000, 100000)
			c.Do("SET", "c", "x", "PX", "5000").OK()
			c.Do("SETBIT", "c", "3", "1").Int(1)
			c.Do("BITFIELD", "c", "INCRBY", "u8", "0", "1").Raws("*1\r\n:121\r\n")
			c.Do("PTTL", "c").IntBetween(1, 5000)
			c.Do("BITOP", "NOT", "d", "c").Int(1)
			c.Do("PTTL", "d").IntBetween(90000, 100000)
		})
	}
}

// TestBitReadsStayInRedis: on the redis store GETBIT, BITCOUNT, BITPOS and BITFIELD_RO run in
// Redis: reading bits of a 1 MiB bitmap does not bring the bitmap to Vela (Redis's
// total_net_output_bytes grows by far less than its size).
func TestBitReadsStayInRedis(t *testing.T) {
	redis := redistest.Start(t)
	cfg := testnode.Config()
	cfg.Store.Type, cfg.Store.RedisURL = "redis", "redis://"+redis.Addr+"/0"
	c := respclient.Dial(t, testnode.Start(t, cfg).Addr())
	c.Do("SETBIT", "big", "8388607", "1").Int(0)
	direct := respclient.Dial(t, redis.Addr)
	sent := func() int64 {
		for _, l := range strings.Split(direct.Do("INFO", "stats").Value.Text(), "\r\n") {
			if v, ok := strings.CutPrefix(l, "total_net_output_bytes:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no total_net_output_bytes")
		return 0
	}
	before := sent()
	for range 5 {
		c.Do("GETBIT", "big", "8388607").Int(1)
		c.Do("BITCOUNT", "big").Int(1)
		c.Do("BITPOS", "big", "1").Int(8388607)
		c.Do("BITFIELD_RO", "big", "GET", "u8", "#1048575").Raws("*1\r\n:1\r\n")
		c.Do("BITFIELD", "big", "GET", "u8", "#1048575").Raws("*1\r\n:1\r\n")
	}
	if grew := sent() - before; grew > 64<<10 {
		t.Fatalf("Redis sent %d bytes for 25 bit reads of a 1 MiB bitmap", grew)
	}
}
