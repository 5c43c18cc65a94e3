package e2e_test

import (
	"bytes"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/rdb"
)

// TestDumpRestoreWithRedis moves values both ways between Redis and Vela with DUMP and
// RESTORE, as a migration tool does: Redis's payloads (LZF-compressed ones among them) restore
// in Vela to the same value, Vela's restore in Redis to the same value, and where Redis does
// not compress (values of at most 20 bytes, integers, incompressible data) the two payloads are
// the same bytes. Then RESTORE's options and errors, in Redis's order, reply for reply.
func TestDumpRestoreWithRedis(t *testing.T) {
	redis := respclient.Dial(t, redistest.Start(t).Addr)
	vela := respclient.Dial(t, testnode.StartDefault(t).Addr())
	r := rand.New(rand.NewSource(7))
	random := func(n int) string {
		b := make([]byte, n)
		r.Read(b)
		return string(b)
	}
	values := []string{"", "0", "-1", "127", "-32768", "65535", "2147483647", "-2147483649", "12345678901",
		"007", "hello", "x\x00y\r\n", strings.Repeat("x", 21), strings.Repeat("ab", 100),
		strings.Repeat("the quick brown fox ", 5000), random(20), random(300), random(70000)}
	compressed := 0
	for i, v := range values {
		key := fmt.Sprint("v", i)
		redis.Do("SET", key, v).OK()
		fromRedis := []byte(redis.Do("DUMP", key).Value.Str)
		vela.Do("RESTORE", key, "0", fromRedis).OK()
		vela.Do("GET", key).Bulk(v)
		fromVela := []byte(vela.Do("DUMP", key).Value.Str)
		redis.Do("RESTORE", key+"'", "0", fromVela).OK()
		redis.Do("GET", key+"'").Bulk(v)
		if len(fromRedis) > 1 && fromRedis[1] == 0xC3 { // LZF
			compressed++
		} else if !bytes.Equal(fromRedis, fromVela) {
			t.Errorf("DUMP of %.20q: Redis %x, Vela %x", v, fromRedis, fromVela)
		}
	}
	if compressed == 0 {
		t.Error("Redis compressed none of the values: Vela's LZF decoding went untested")
	}

	hello := rdb.Dump([]byte("hello"))
	bad := append([]byte(nil), hello...)
	bad[3] ^= 1
	future := fmt.Sprint(time.Now().Add(time.Hour).UnixMilli())
	sameReplies(t, redis, vela, [][]any{
		{"DEL", "k", "k2"}, {"RESTORE", "k", "0", hello}, {"RESTORE", "k", "0", hello}, {"GET", "k"},
		{"RESTORE", "k", "0", hello, "REPLACE"}, {"RESTORE", "k2", future, hello, "ABSTTL"}, {"EXPIRETIME", "k2"},
		{"RESTORE", "k3", "1", hello, "ABSTTL"}, {"EXISTS", "k3"}, {"RESTORE", "k", "1", hello, "ABSTTL", "REPLACE"},
		{"EXISTS", "k"}, {"RESTORE", "k4", "0", bad}, {"RESTORE", "k2", "0", bad}, {"RESTORE", "k4", "-1", hello},
		{"RESTORE", "k4", "x", hello}, {"RESTORE", "k4", "0", "short"}, {"RESTORE", "k4", "0", hello, "IDLETIME", "-1"},
		{"RESTORE", "k4", "0", hello, "FREQ", "256"}, {"RESTORE", "k4", "0", hello, "IDLETIME", "5", "FREQ", "5"},
		{"RESTORE", "k4", "0", hello, "FOO"}, {"RESTORE", "k4", "0", hello, "IDLETIME"}, {"RESTORE", "k4", "0", hello, "FREQ", "x"},
		{"RESTORE", "k4", "0", hello, "REPLACE", "REPLACE", "ABSTTL", "ABSTTL"}, {"RESTORE", "k4"}, {"DUMP", "nosuch"},
		{"DUMP"}, {"DUMP", "k4"},
	})
}
