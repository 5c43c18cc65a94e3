package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// pubsubMark ends what a step is waited for: the reply to PING with it, as an array in the
// RESP2 Pub/Sub context and a bulk string elsewhere, ends with the same bytes.
const pubsubMark = "__mark__"

// runPubSub plays steps against the server at addr, on connections a and b (RESP2), c (RESP3),
// p (RESP2, the publisher) and r (RESP2, the target of a's tracking redirect). It returns, for
// each step, every frame the sender received for it and what every other connection received
// meanwhile. Each connection's frames are read up to the reply of a PING sent after the step,
// so the record does not depend on timing; they are sorted, since the order of one publish's
// deliveries to one connection (a channel and its patterns) is not Redis's contract, nor is
// whether a subscriber's own message comes before or after its PUBLISH's reply.
func runPubSub(t *testing.T, addr string, steps []trackingStep) []string {
	names := []byte("abcpr")
	conns := map[byte]*respclient.Conn{}
	for _, w := range names {
		conns[w] = respclient.Dial(t, addr)
	}
	conns['c'].Do("HELLO", "3")
	conns['p'].Do("FLUSHALL").OK()
	ids := map[string]string{"$R": conns['r'].Do("CLIENT", "ID").Value.Text()}
	var record []string
	inMulti := map[byte]bool{}
	for _, st := range steps {
		args := st.argsWith(ids)
		sender := conns[st.who]
		var line string
		if inMulti[st.who] || strings.EqualFold(st.args[0], "MULTI") { // a PING would be queued: one frame
			line = fmt.Sprintf("%c %v -> %q", st.who, st.args, sender.Do(args...).Raw)
		} else {
			sender.Send(args...)
			line = fmt.Sprintf("%c %v -> %q", st.who, st.args, framesUntilMark(t, sender))
		}
		switch strings.ToUpper(st.args[0]) {
		case "MULTI":
			inMulti[st.who] = !strings.Contains(line, "-ERR")
		case "EXEC", "DISCARD":
			inMulti[st.who] = false
		}
		for _, w := range names {
			if c := conns[w]; w != st.who && c != nil && !inMulti[w] {
				got := framesUntilMark(t, c)
				if len(got) > 0 {
					line += fmt.Sprintf(" | %c got %q", w, got)
				}
				if slices.Contains(got, closedMark) {
					delete(conns, w)
				}
			}
		}
		record = append(record, line)
	}
	return record
}

// closedMark is what framesUntilMark records for a connection the server closed (CLIENT KILL).
const closedMark = "<closed>"

// framesUntilMark sends PING pubsubMark on c and returns the frames received before its reply,
// sorted, with what differs between two servers masked (HELLO's connection ID, the lines of
// INFO and CLIENT LIST that are not about Pub/Sub).
func framesUntilMark(t *testing.T, c *respclient.Conn) []string {
	t.Helper()
	c.Send("PING", pubsubMark)
	var got []string
	if err := c.Flush(); err != nil {
		return append(got, closedMark)
	}
	for {
		v, raw, err := c.Receive()
		if err != nil {
			return append(got, closedMark)
		}
		s := string(raw)
		if strings.HasSuffix(s, "$8\r\n"+pubsubMark+"\r\n") {
			slices.Sort(got)
			return got
		}
		switch {
		case strings.Contains(s, "pubsub_channels:"):
			var keep []string
			for _, l := range strings.Split(v.Text(), "\r\n") {
				if strings.HasPrefix(l, "pubsub") {
					keep = append(keep, l)
				}
			}
			s = strings.Join(keep, ",")
		case strings.Contains(s, " flags="):
			var keep []string
			for _, l := range strings.Split(strings.TrimSpace(v.Text()), "\n") {
				for _, f := range strings.Fields(l) {
					if strings.HasPrefix(f, "flags=") || strings.HasPrefix(f, "sub=") || strings.HasPrefix(f, "psub=") {
						keep = append(keep, f)
					}
				}
			}
			slices.Sort(keep)
			s = strings.Join(keep, " ")
		}
		got = append(got, helloID.ReplaceAllString(s, "id\r\n:ID\r\n"))
	}
}

// TestPubSubLikeRedis plays the same Pub/Sub sessions against Redis and Vela and compares every
// reply and every message byte for byte: subscriptions and their counts, messages and pattern
// messages in RESP2 and RESP3, the RESP2 Pub/Sub context (its refusals, PING's array, RESET,
// MULTI), PUBSUB's introspection, errors, INFO's and CLIENT LIST's Pub/Sub fields, CLIENT KILL
// TYPE pubsub, and client tracking's invalidations redirected to a RESP2 subscriber as messages
// on __redis__:invalidate.
func TestPubSubLikeRedis(t *testing.T) {
	redisAddr := redistest.Start(t).Addr
	velaAddr := testnode.StartDefault(t).Addr()
	s := func(who byte, args ...string) trackingStep { return trackingStep{who, args} }
	sessions := map[string][]trackingStep{
		"channels-and-patterns": {
			s('a', "UNSUBSCRIBE"), s('a', "PUNSUBSCRIBE"), s('a', "UNSUBSCRIBE", "nothing"),
			s('a', "SUBSCRIBE", "news", "sports"), s('a', "SUBSCRIBE", "news"), s('a', "PSUBSCRIBE", "n*", "s?orts"),
			s('c', "SUBSCRIBE", "news"), s('c', "PSUBSCRIBE", "*s"), s('b', "PSUBSCRIBE", "[ns]*"),
			s('p', "PUBLISH", "news", "hello"), s('p', "PUBLISH", "sports", "x\x00y"), s('p', "PUBLISH", "nobody", "z"),
			s('p', "PUBLISH", "weather", ""),
			s('p', "PUBSUB", "CHANNELS", "n*"), s('p', "PUBSUB", "CHANNELS", "s*"), s('p', "PUBSUB", "CHANNELS", "x*"),
			s('p', "PUBSUB", "NUMSUB", "news", "sports", "none"), s('p', "PUBSUB", "NUMSUB"), s('p', "PUBSUB", "NUMPAT"),
			s('p', "INFO", "stats"), s('p', "CLIENT", "LIST", "TYPE", "pubsub"), s('p', "CLIENT", "LIST", "TYPE", "normal"),
			s('a', "UNSUBSCRIBE", "news", "never"), s('a', "PUNSUBSCRIBE", "n*"), s('a', "PUNSUBSCRIBE", "s?orts"),
			s('p', "PUBLISH", "sports", "again"), s('a', "UNSUBSCRIBE"), s('a', "GET", "k"),
			s('c', "UNSUBSCRIBE", "news"), s('c', "PUNSUBSCRIBE"), s('b', "PUNSUBSCRIBE", "[ns]*"),
			s('p', "PUBSUB", "NUMPAT"), s('p', "PUBSUB", "CHANNELS"), s('p', "PUBLISH", "news", "gone"),
			s('p', "INFO", "stats"),
		},
		"resp2-context": {
			s('a', "SUBSCRIBE", "ch"), s('a', "GET", "k"), s('a', "PING"), s('a', "PING", "hi"),
			s('a', "MULTI"), s('a', "CLIENT", "ID"), s('a', "PUBLISH", "ch", "x"), s('a', "EXEC"),
			s('a', "SET", "k", "v"), s('a', "NOSUCH"), s('a', "GET"), s('a', "CLIENT", "NOSUCH"),
			s('a', "RESET"), s('a', "GET", "k"), s('a', "PING"), s('p', "PUBSUB", "NUMSUB", "ch"),
			s('c', "SUBSCRIBE", "ch"), s('c', "GET", "k"), s('c', "PING"), s('c', "SET", "k", "v"),
			s('p', "PUBLISH", "ch", "to-c"), s('c', "UNSUBSCRIBE", "ch", "other"),
			s('b', "MULTI"), s('b', "SUBSCRIBE", "ch"), s('b', "EXEC"), s('p', "PUBLISH", "ch", "after-exec"),
			s('b', "GET", "k"), s('b', "UNSUBSCRIBE"), s('b', "GET", "k"), s('p', "PUBSUB", "CHANNELS"),
			// Inside EXEC a subscribed connection's commands run, as in Redis.
			s('b', "SUBSCRIBE", "ch"), s('c', "MULTI"), s('c', "SUBSCRIBE", "ch2"), s('c', "GET", "k"), s('c', "EXEC"),
		},
		"errors": {
			s('p', "SUBSCRIBE"), s('p', "PSUBSCRIBE"), s('p', "PUBLISH"), s('p', "PUBLISH", "a"),
			s('p', "PUBLISH", "a", "b", "c"), s('p', "PUBSUB"), s('p', "PUBSUB", "foo"),
			s('p', "PUBSUB", "NUMPAT", "x"), s('p', "PUBSUB", "CHANNELS", "a", "b"), s('p', "PUBSUB", "HELP", "x"),
			s('p', "EVAL", "return redis.call('publish', 'ch', 'from-script')", "0"),
			s('p', "EVAL", "return pcall(redis.call, 'subscribe', 'ch') and 1 or 0", "0"),
		},
		"shard-channels": {
			s('a', "SUNSUBSCRIBE"), s('a', "SUNSUBSCRIBE", "nothing"),
			s('a', "SSUBSCRIBE", "x", "y"), s('a', "SSUBSCRIBE", "x"), s('a', "GET", "k"), s('a', "PING"),
			s('a', "SUBSCRIBE", "x"), s('a', "PSUBSCRIBE", "*"), s('c', "SSUBSCRIBE", "x"), s('b', "SSUBSCRIBE", "y"),
			s('p', "SPUBLISH", "x", "shard"), s('p', "PUBLISH", "x", "plain"), s('p', "SPUBLISH", "nobody", "z"),
			s('p', "PUBSUB", "SHARDCHANNELS", "y*"), s('p', "PUBSUB", "SHARDCHANNELS", "x*"), s('p', "PUBSUB", "CHANNELS"),
			s('p', "PUBSUB", "SHARDNUMSUB", "x", "y", "q"), s('p', "PUBSUB", "SHARDNUMSUB"), s('p', "PUBSUB", "NUMSUB", "x"),
			s('p', "INFO", "stats"), s('p', "CLIENT", "LIST", "TYPE", "pubsub"), s('a', "SUNSUBSCRIBE", "q"),
			s('a', "SUNSUBSCRIBE", "y"), s('a', "SUNSUBSCRIBE"), s('a', "UNSUBSCRIBE"), s('a', "GET", "k"), s('a', "PUNSUBSCRIBE"), s('a', "GET", "k"),
			s('a', "SSUBSCRIBE", "x"), s('a', "UNSUBSCRIBE"), s('a', "GET", "k"), s('a', "SUNSUBSCRIBE", "x", "x"),
			s('a', "GET", "k"), s('b', "RESET"), s('p', "PUBSUB", "SHARDNUMSUB", "y"),
			s('p', "MULTI"), s('p', "SSUBSCRIBE", "m"), s('p', "SUNSUBSCRIBE", "m"), s('p', "SPUBLISH", "x", "tx"), s('p', "EXEC"),
			s('p', "SSUBSCRIBE"), s('p', "SPUBLISH", "x"), s('p', "PUBSUB", "SHARDCHANNELS", "a", "b"),
			s('p', "EVAL", "return redis.call('spublish', 'x', 'from-script')", "0"),
			s('p', "EVAL", "return pcall(redis.call, 'ssubscribe', 'x') and 1 or 0", "0"),
			s('p', "COMMAND", "INFO", "spublish", "ssubscribe", "sunsubscribe"), s('p', "COMMAND", "GETKEYS", "SPUBLISH", "x", "m"),
			s('p', "PUBSUB", "HELP"), s('p', "INFO", "stats"),
		},
		"tracking-redirect": {
			s('r', "SUBSCRIBE", "__redis__:invalidate"),
			s('a', "CLIENT", "TRACKING", "ON", "REDIRECT", "$R"), s('a', "GET", "k1"), s('a', "MGET", "k2", "k3"),
			s('p', "SET", "k1", "1"), s('p', "MSET", "k2", "1", "k3", "2"), s('a', "GET", "k1"),
			s('p', "FLUSHALL"), s('a', "GET", "k1"), s('r', "UNSUBSCRIBE"), s('p', "SET", "k1", "2"),
			s('r', "PSUBSCRIBE", "anything*"), s('a', "GET", "k1"), s('p', "DEL", "k1"),
			s('a', "CLIENT", "TRACKING", "OFF"),
			s('a', "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "b:", "REDIRECT", "$R"), s('p', "SET", "b:1", "x"),
			s('p', "CLIENT", "KILL", "TYPE", "pubsub"), s('p', "CLIENT", "LIST", "TYPE", "pubsub"),
		},
	}
	// Not run against the redis store: there a message reaches a subscriber through the
	// backing Redis, after the PUBLISH has been answered, so the step it arrives in is not
	// fixed (TestPubSubSidecars covers that store).
	samePubSub(t, redisAddr, velaAddr, sessions)
}

// samePubSub plays each session against Redis and Vela (runPubSub) and compares the records.
func samePubSub(t *testing.T, redisAddr, velaAddr string, sessions map[string][]trackingStep) {
	for name, steps := range sessions {
		t.Run(name, func(t *testing.T) {
			want, got := runPubSub(t, redisAddr, steps), runPubSub(t, velaAddr, steps)
			for i := range want {
				if want[i] != got[i] {
					t.Errorf("step %d:\n redis: %s\n  vela: %s", i, want[i], got[i])
				}
			}
		})
	}
}

// TestPubSubGoRedis subscribes and publishes with go-redis, in RESP2 and RESP3: messages and
// pattern messages arrive, in order, on the connection go-redis keeps for them.
func TestPubSubGoRedis(t *testing.T) {
	addr := testnode.StartDefault(t).Addr()
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("resp%d", proto), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			client := redis.NewClient(&redis.Options{Addr: addr, Protocol: proto})
			defer client.Close()
			sub := client.Subscribe(ctx, "orders")
			defer sub.Close()
			if err := sub.PSubscribe(ctx, "audit.*"); err != nil {
				t.Fatal(err)
			}
			for range 2 { // the subscriptions' confirmations
				if _, err := sub.Receive(ctx); err != nil {
					t.Fatal(err)
				}
			}
			const n = 500
			for i := range n {
				if got := client.Publish(ctx, "orders", fmt.Sprint(i)).Val(); got != 1 {
					t.Fatalf("PUBLISH %d reached %d subscribers, want 1", i, got)
				}
			}
			client.Publish(ctx, "audit.login", "alice")
			ch := sub.Channel()
			for i := range n {
				select {
				case m := <-ch:
					if m.Channel != "orders" || m.Payload != fmt.Sprint(i) {
						t.Fatalf("message %d: %+v", i, m)
					}
				case <-ctx.Done():
					t.Fatalf("message %d did not arrive", i)
				}
			}
			select {
			case m := <-ch:
				if m.Pattern != "audit.*" || m.Channel != "audit.login" || m.Payload != "alice" {
					t.Fatalf("pattern message: %+v", m)
				}
			case <-ctx.Done():
				t.Fatal("the pattern message did not arrive")
			}
			if got := client.PubSubNumSub(ctx, "orders").Val()["orders"]; got != 1 {
				t.Errorf("PUBSUB NUMSUB orders: %d", got)
			}
		})
	}
}

// TestPubSubInClusters: a message published through one member reaches the subscribers of every
// member, PUBLISH counts them all, and one publisher's messages arrive in order; in the
// partitioned topology (whatever member the channel's name would place it on) and the
// replicated one.
func TestPubSubInClusters(t *testing.T) {
	topologies := map[string]func(t *testing.T) []*server.Server{
		"partitioned": func(t *testing.T) []*server.Server {
			nodes := testnode.StartCluster(t, 3, nil)
			testnode.WaitConverged(t, 10*time.Second, nodes...)
			return nodes
		},
		"replicated": func(t *testing.T) []*server.Server {
			nodes := testnode.StartReplicated(t, 3, nil)
			testnode.WaitReplicated(t, 10*time.Second, nodes...)
			return nodes
		},
	}
	for name, start := range topologies {
		t.Run(name, func(t *testing.T) {
			nodes := start(t)
			var subs []*respclient.Conn
			for i, n := range nodes {
				c := respclient.Dial(t, n.Addr())
				if i == 2 {
					c.Do("HELLO", "3")
					c.Send("PSUBSCRIBE", "ev*")
				} else {
					c.Send("SUBSCRIBE", "events")
				}
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
				if _, _, err := c.Receive(); err != nil {
					t.Fatal(err)
				}
				subs = append(subs, c)
			}
			pub := respclient.Dial(t, nodes[1].Addr())
			const n = 200
			for i := range n {
				pub.Send("PUBLISH", "events", fmt.Sprint(i))
			}
			if err := pub.Flush(); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				v, _, err := pub.Receive()
				if err != nil {
					t.Fatal(err)
				}
				if v.Int != 3 {
					t.Fatalf("PUBLISH %d reached %s subscribers, want 3", i, v)
				}
			}
			for j, c := range subs {
				for i := range n {
					v, _, err := c.Receive()
					if err != nil {
						t.Fatalf("subscriber on member %d, message %d: %v", j, i, err)
					}
					if payload := v.Elems[len(v.Elems)-1].Text(); payload != fmt.Sprint(i) {
						t.Fatalf("subscriber on member %d: message %d is %v", j, i, v)
					}
				}
			}
			pub.Do("PUBSUB", "NUMSUB", "events").Raws("*2\r\n$6\r\nevents\r\n:1\r\n") // each member answers for its own

			// A shard channel too reaches every member's subscribers, whichever member owns
			// its name on the ring.
			shardSub := respclient.Dial(t, nodes[0].Addr())
			shardSub.Do("SSUBSCRIBE", "orders").Raws("*3\r\n$10\r\nssubscribe\r\n$6\r\norders\r\n:1\r\n")
			for i := range 3 {
				respclient.Dial(t, nodes[i].Addr()).Do("SPUBLISH", "orders", fmt.Sprint("o", i)).Raws(":1\r\n")
				if _, raw, err := shardSub.Receive(); err != nil || string(raw) != fmt.Sprintf("*3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$2\r\no%d\r\n", i) {
					t.Fatalf("shard message published through member %d: %q, %v", i, raw, err)
				}
			}
			pub.Do("PUBLISH", "orders", "plain").Raws(":0\r\n") // a channel of the same name is another
		})
	}
}

// TestKeyspaceNotificationsLikeRedis plays the same sessions against Redis and Vela with
// keyspace notifications on (CONFIG SET notify-keyspace-events) and compares what a subscriber
// to every keyspace and keyevent channel receives for each command, byte for byte: the events
// of every string and key command (writes, deletes, expiry set and cleared, an expiry in the
// past), expired and evicted keys, key misses, and the classes that select them.
func TestKeyspaceNotificationsLikeRedis(t *testing.T) {
	redisAddr := redistest.Start(t, "--maxmemory-policy", "allkeys-lru").Addr
	velaAddr := testnode.StartDefault(t).Addr()
	s := func(who byte, args ...string) trackingStep { return trackingStep{who, args} }
	config := func(v string) trackingStep { return s('p', "CONFIG", "SET", "notify-keyspace-events", v) }
	listen := s('a', "PSUBSCRIBE", "__key*__:*")
	sessions := map[string][]trackingStep{
		"strings": {
			config("KEA"), s('p', "CONFIG", "GET", "notify-keyspace-events"), listen,
			s('p', "SET", "k", "v"), s('p', "SET", "k", "v", "EX", "100"), s('p', "SET", "k", "v", "KEEPTTL"),
			s('p', "SET", "k", "w", "NX"), s('p', "SET", "k", "w", "XX", "GET"), s('p', "SET", "n", "w", "XX"),
			s('p', "SETNX", "k", "x"), s('p', "SETNX", "k2", "x"), s('p', "SETEX", "k", "10", "v"),
			s('p', "PSETEX", "k", "10000", "v"), s('p', "GETSET", "k", "g"), s('p', "MSET", "a", "1", "b", "2"),
			s('p', "MSETNX", "a", "1", "c", "3"), s('p', "MSETNX", "d", "1", "e", "3"),
			s('p', "INCR", "i"), s('p', "DECRBY", "i", "5"), s('p', "INCRBYFLOAT", "i", "1.5"), s('p', "INCR", "k"),
			s('p', "APPEND", "k", "x"), s('p', "SETRANGE", "k", "1", "yz"), s('p', "SETRANGE", "k", "1", ""),
			s('p', "SETRANGE", "new", "0", ""), s('p', "GETDEL", "k"), s('p', "GETDEL", "k"),
			s('p', "GETEX", "a", "EX", "100"), s('p', "GETEX", "a", "PERSIST"), s('p', "GETEX", "a", "PERSIST"),
			s('p', "GETEX", "a"), s('p', "GET", "nosuch"), s('p', "MGET", "a", "nosuch"), s('p', "STRLEN", "nosuch"),
			s('p', "GETRANGE", "nosuch", "0", "1"),
		},
		"keys": {
			config("KEA"), listen,
			s('p', "MSET", "a", "1", "b", "2", "c", "3"), s('p', "DEL", "a", "nosuch"), s('p', "UNLINK", "b"),
			s('p', "EXPIRE", "c", "100"), s('p', "EXPIRE", "c", "50", "GT"), s('p', "PEXPIRE", "c", "100000"),
			s('p', "EXPIREAT", "c", "4000000000"), s('p', "PERSIST", "c"), s('p', "PERSIST", "c"),
			s('p', "EXPIRE", "c", "-1"), s('p', "SET", "d", "1"), s('p', "PEXPIREAT", "d", "1"),
			s('p', "EXPIRE", "nosuch", "10"), s('p', "EXISTS", "nosuch"), s('p', "TTL", "nosuch"),
			s('p', "TYPE", "nosuch"), s('p', "TOUCH", "nosuch"), s('p', "SET", "e", "1"),
			s('p', "GETEX", "e", "PXAT", "1"), s('p', "FLUSHALL"),
		},
		"misses": {
			config("KEm"), listen, s('p', "GET", "x"), s('p', "MGET", "x", "y"), s('p', "STRLEN", "x"),
			s('p', "EXISTS", "x"), s('p', "TTL", "x"), s('p', "PTTL", "x"), s('p', "EXPIRETIME", "x"),
			s('p', "TYPE", "x"), s('p', "TOUCH", "x"), s('p', "GETRANGE", "x", "0", "1"), s('p', "SUBSTR", "x", "0", "1"),
			s('p', "GETSET", "x", "1"), s('p', "DEL", "x"), s('p', "SET", "x", "1", "GET"), s('p', "DEL", "x"),
			s('p', "GETDEL", "x"), s('p', "GETEX", "x"), s('p', "GETEX", "x", "EX", "10"),
			s('p', "OBJECT", "ENCODING", "x"), s('p', "OBJECT", "FREQ", "x"), s('p', "INCR", "x"),
			s('p', "APPEND", "y", "z"), s('p', "EXPIRE", "z", "10"), s('p', "PERSIST", "z"),
		},
		"new-keys": {
			config("KEn"), s('p', "CONFIG", "GET", "notify-keyspace-events"), listen,
			s('p', "SET", "k", "v"), s('p', "SET", "k", "w"), s('p', "SET", "n", "w", "XX"), s('p', "SET", "n", "w", "NX"),
			s('p', "SETNX", "k", "x"), s('p', "SETNX", "k2", "x"), s('p', "GETSET", "g", "1"), s('p', "SET", "g2", "1", "GET"),
			s('p', "MSET", "a", "1", "b", "2"), s('p', "MSETNX", "c", "1", "d", "2"), s('p', "INCR", "i"), s('p', "INCR", "i"),
			s('p', "INCRBYFLOAT", "f", "1.5"), s('p', "APPEND", "ap", "x"), s('p', "APPEND", "ap", "y"),
			s('p', "SETRANGE", "sr", "0", ""), s('p', "SETRANGE", "sr", "2", "x"), s('p', "GETEX", "none", "EX", "10"),
			s('p', "SET", "e", "1", "PX", "100000"), s('p', "PEXPIREAT", "e", "1"), s('p', "SET", "e", "2"),
			s('p', "DEL", "k"), s('p', "SET", "k", "v", "EX", "100"),
			config("KEAn"), s('p', "CONFIG", "GET", "notify-keyspace-events"), s('p', "SET", "z", "1"), s('p', "INCR", "z"),
			config("KEA"), s('p', "SET", "y", "1"),
		},
		"rename-and-copy": {
			config("KEAnm"), listen, s('p', "SET", "a", "1", "EX", "100"), s('p', "RENAME", "a", "b"),
			s('p', "RENAME", "a", "b"), s('p', "SET", "c", "2"), s('p', "RENAME", "b", "c"), s('p', "RENAME", "c", "c"),
			s('p', "RENAMENX", "c", "c"), s('p', "SET", "d", "3"), s('p', "RENAMENX", "c", "d"),
			s('p', "RENAMENX", "c", "e"), s('p', "COPY", "e", "f"), s('p', "COPY", "e", "f"),
			s('p', "COPY", "e", "f", "REPLACE"), s('p', "COPY", "nosuch", "g"), s('p', "COPY", "e", "e"),
			s('p', "COPY", "e", "h", "DB", "0"), s('p', "TTL", "f"), s('p', "INFO", "stats"),
		},
		"bits": {
			config("KEAnm"), listen, s('p', "SETBIT", "a", "3", "0"), s('p', "SETBIT", "a", "3", "0"),
			s('p', "SETBIT", "a", "3", "1"), s('p', "SETBIT", "a", "20", "0"), s('p', "GETBIT", "nosuch", "1"),
			s('p', "BITFIELD", "f", "SET", "u8", "0", "0"), s('p', "BITFIELD", "f", "SET", "u8", "0", "0"),
			s('p', "BITFIELD", "f", "INCRBY", "u8", "0", "1"), s('p', "BITFIELD", "g", "OVERFLOW", "FAIL", "INCRBY", "u2", "0", "5"),
			s('p', "BITFIELD", "nosuch", "GET", "u8", "0"), s('p', "BITFIELD_RO", "f", "GET", "u8", "0"),
			s('p', "BITCOUNT", "nosuch"), s('p', "BITPOS", "nosuch", "1"), s('p', "BITOP", "OR", "d", "a", "nosuch"),
			s('p', "BITOP", "OR", "d", "a", "f"), s('p', "BITOP", "AND", "d", "nosuch"), s('p', "BITOP", "AND", "d", "nosuch"),
			s('p', "SET", "e", "1", "EX", "100"), s('p', "BITOP", "NOT", "e", "a"), s('p', "TTL", "e"), s('p', "INFO", "stats"),
		},
		"classes": {
			config("Kg"), listen, s('p', "SET", "k", "v", "EX", "100"), s('p', "DEL", "k"),
			config("E$"), s('p', "SET", "k", "v", "EX", "100"), s('p', "INCR", "i"), s('p', "DEL", "k"),
			config("Km"), s('p', "GET", "nosuch"), s('p', "SET", "k", "v"),
			config("g"), s('p', "DEL", "k"), config("K"), s('p', "DEL", "i"), config("KEA"),
			s('p', "CONFIG", "GET", "notify-keyspace-events"), config("bogus"), config(""), s('p', "SET", "k", "v"),
		},
	}
	samePubSub(t, redisAddr, velaAddr, sessions)
	// The disk store reports the keys MSET creates from its own transaction.
	disk := testnode.Config()
	disk.Store.Type, disk.Store.DiskPath = "disk", filepath.Join(t.TempDir(), "vela.db")
	samePubSub(t, redisAddr, testnode.Start(t, disk).Addr(), map[string][]trackingStep{"new-keys-disk": sessions["new-keys"]})
}

// TestKeyspaceExpiredAndEvicted: a key the background sweep expires, on the memory and the disk
// store, is published as "expired" (class x), and a key the memory store evicts as "evicted"
// (class e), in the messages Redis sends for them.
func TestKeyspaceExpiredAndEvicted(t *testing.T) {
	mem := testnode.Config()
	mem.SweepInterval, mem.NotifyKeyspaceEvents = 20*time.Millisecond, "KEx"
	disk := mem
	disk.Store.Type, disk.Store.DiskPath = "disk", filepath.Join(t.TempDir(), "vela.db")
	evict := testnode.Config()
	evict.MaxSize, evict.EvictionPolicy, evict.NotifyKeyspaceEvents = 10, "lru", "Ee"
	for name, cfg := range map[string]config.Config{"memory": mem, "disk": disk, "eviction": evict} {
		t.Run(name, func(t *testing.T) {
			addr := testnode.Start(t, cfg).Addr()
			sub, c := respclient.Dial(t, addr), respclient.Dial(t, addr)
			sub.Do("PSUBSCRIBE", "__key*__:*")
			if name == "eviction" { // 20 keys in room for 10: 10 evicted, whichever LRU sampling picks
				left := map[string]bool{}
				for i := range 20 {
					k := fmt.Sprintf("k%d%d", i%10, i/10) // names of one length: one length of message
					c.Do("SET", k, "v").OK()
					left[k] = true
				}
				for range 10 {
					_, raw, err := sub.Receive()
					if err != nil {
						t.Fatal(err)
					}
					k, ok := strings.CutPrefix(string(raw), "*4\r\n$8\r\npmessage\r\n$10\r\n__key*__:*\r\n$22\r\n__keyevent@0__:evicted\r\n$3\r\n")
					if k = strings.TrimSuffix(k, "\r\n"); !ok || !left[k] {
						t.Fatalf("%q is not the eviction of a key left", raw)
					}
					delete(left, k)
				}
				return
			}
			c.Do("SET", "soon", "v", "PX", "30").OK()
			want := []string{
				"*4\r\n$8\r\npmessage\r\n$10\r\n__key*__:*\r\n$19\r\n__keyspace@0__:soon\r\n$7\r\nexpired\r\n",
				"*4\r\n$8\r\npmessage\r\n$10\r\n__key*__:*\r\n$22\r\n__keyevent@0__:expired\r\n$4\r\nsoon\r\n",
			}
			for i, w := range want {
				_, raw, err := sub.Receive() // no read of the key: the store removes it on its own
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if string(raw) != w {
					t.Fatalf("message %d: %q, want %q", i, raw, w)
				}
			}
		})
	}
}

// TestPubSubUnderChurn publishes from four connections while eight others keep subscribing,
// reading a little and leaving (by UNSUBSCRIBE or by hanging up), on event loops and on
// goroutines. A steady subscriber must receive every message of its channel, each publisher's
// in order, and when the churn ends the node must hold no subscription but the steady one's.
func TestPubSubUnderChurn(t *testing.T) {
	goroutines := testnode.Config()
	goroutines.EventLoops = 0
	for name, cfg := range map[string]config.Config{"loops": testnode.Config(), "goroutines": goroutines} {
		t.Run(name, func(t *testing.T) {
			addr := testnode.Start(t, cfg).Addr()
			steady := respclient.Dial(t, addr)
			steady.Do("SUBSCRIBE", "c0")
			const publishers, each = 4, 500
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for p := range publishers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := respclient.DialErr(addr)
					if err != nil {
						errs <- err
						return
					}
					defer c.Close()
					for i := range each {
						c.Send("PUBLISH", fmt.Sprint("c", i%4), fmt.Sprintf("%d:%d", p, i))
						if i%50 == 49 {
							if err := c.Flush(); err != nil {
								errs <- err
								return
							}
							for range 50 {
								if _, _, err := c.Receive(); err != nil {
									errs <- err
									return
								}
							}
						}
					}
				}()
			}
			for s := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for round := range 15 {
						c, err := respclient.DialErr(addr)
						if err != nil {
							errs <- err
							return
						}
						if s%2 == 1 {
							c.Send("HELLO", "3")
						}
						c.Send("SUBSCRIBE", fmt.Sprint("c", s%4))
						c.Send("PSUBSCRIBE", "c*")
						if err := c.Flush(); err != nil {
							errs <- err
							return
						}
						c.SetTimeout(200 * time.Millisecond)
						for range 5 { // some messages, or a timeout once the publishers are done
							if _, _, err := c.Receive(); err != nil {
								break
							}
						}
						if round%2 == 0 {
							c.Send("UNSUBSCRIBE")
							c.Send("PUNSUBSCRIBE")
							_ = c.Flush()
						}
						_ = c.Close()
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			next := make([]int, publishers) // each publisher's next message on c0
			for range publishers * each / 4 {
				v, _, err := steady.Receive()
				if err != nil {
					t.Fatal(err)
				}
				var p, i int
				if _, err := fmt.Sscanf(v.Elems[2].Text(), "%d:%d", &p, &i); err != nil || i != next[p] {
					t.Fatalf("message %v: want publisher %d's message %d", v, p, next[p])
				}
				next[p] += 4
			}
			check := respclient.Dial(t, addr)
			deadline := time.Now().Add(5 * time.Second)
			for {
				numsub := check.Do("PUBSUB", "NUMSUB", "c0", "c1", "c2", "c3").Value.String()
				numpat := check.Do("PUBSUB", "NUMPAT").Value.Int
				if numsub == `*["c0", (integer) 1, "c1", (integer) 0, "c2", (integer) 0, "c3", (integer) 0]` && numpat == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("subscriptions left behind: NUMSUB %s, NUMPAT %d", numsub, numpat)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestPubSubSidecars: two Vela nodes on the redis store in front of one Redis share its
// channels with each other and with Redis's own clients: a message published through one
// reaches subscribers on the other, on Redis directly and on itself, PUBLISH counts them all,
// and an UNSUBSCRIBE confirmed by a node leaves no message to come after it.
func TestPubSubSidecars(t *testing.T) {
	backing := redistest.Start(t).Addr
	node := func() string {
		cfg := testnode.Config()
		cfg.Store.Type, cfg.Store.RedisURL = "redis", "redis://"+backing+"/0"
		return testnode.Start(t, cfg).Addr()
	}
	a, b := node(), node()
	subA, subB, direct := respclient.Dial(t, a), respclient.Dial(t, b), respclient.Dial(t, backing)
	subA.Do("SUBSCRIBE", "news").Raws("*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n")
	subB.Do("HELLO", "3")
	subB.Do("PSUBSCRIBE", "n*").Raws(">3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:1\r\n")
	direct.Do("SUBSCRIBE", "news")
	pub := respclient.Dial(t, b)
	pub.Do("PUBLISH", "news", "hello").Int(3)
	for who, want := range map[*respclient.Conn]string{
		subA:   "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n",
		subB:   ">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$5\r\nhello\r\n",
		direct: "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n",
	} {
		if _, raw, err := who.Receive(); err != nil || string(raw) != want {
			t.Fatalf("received %q (%v), want %q", raw, err, want)
		}
	}
	respclient.Dial(t, a).Do("PUBSUB", "NUMSUB", "news").Raws("*2\r\n$4\r\nnews\r\n:2\r\n")
	pub.Do("PUBSUB", "CHANNELS").Strings("news") // not the channels Vela's nodes use among themselves
	pub.Do("PUBSUB", "CHANNELS", "x*").Strings()
	pub.Do("PUBSUB", "NUMPAT").Int(1)
	subA.Do("UNSUBSCRIBE").Raws("*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n")
	pub.Do("PUBLISH", "news", "again").Int(2)
	if got := framesUntilMark(t, subA); len(got) != 0 {
		t.Errorf("after UNSUBSCRIBE: %q", got)
	}
	subA.Do("GET", "k").Nil() // out of the Pub/Sub context

	// Shard channels are Redis's too, held apart from the channels of the same name.
	subA.Do("SSUBSCRIBE", "news").Raws("*3\r\n$10\r\nssubscribe\r\n$4\r\nnews\r\n:1\r\n")
	framesUntilMark(t, direct) // "again"
	direct.Do("SSUBSCRIBE", "news")
	pub.Do("SPUBLISH", "news", "sharded").Int(2)
	for _, who := range []*respclient.Conn{subA, direct} {
		if _, raw, err := who.Receive(); err != nil || string(raw) != "*3\r\n$8\r\nsmessage\r\n$4\r\nnews\r\n$7\r\nsharded\r\n" {
			t.Fatalf("shard message: %q (%v)", raw, err)
		}
	}
	pub.Do("PUBLISH", "news", "plain").Int(2) // subB's pattern and direct's channel; not subA
	if got := framesUntilMark(t, subA); len(got) != 0 {
		t.Errorf("a shard subscriber got a PUBLISH: %q", got)
	}
	pub.Do("PUBSUB", "SHARDCHANNELS").Strings("news")
	pub.Do("PUBSUB", "SHARDNUMSUB", "news").Raws("*2\r\n$4\r\nnews\r\n:2\r\n")
	subA.Do("SUNSUBSCRIBE").Raws("*3\r\n$12\r\nsunsubscribe\r\n$4\r\nnews\r\n:0\r\n")
	pub.Do("PUBSUB", "SHARDNUMSUB", "news").Raws("*2\r\n$4\r\nnews\r\n:1\r\n")
}
