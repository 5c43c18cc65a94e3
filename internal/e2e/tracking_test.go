package e2e_test

import (
	"strings"
	"testing"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestClientTrackingOffLikeRedis: Vela serves no client-side caching, and answers the CLIENT
// subcommands about it as Redis answers a client whose tracking is off (RESP2 and RESP3),
// their syntax errors included; CLIENT NO-EVICT as Redis, its flag in CLIENT INFO. CLIENT
// TRACKING ON is refused with an error that says so.
func TestClientTrackingOffLikeRedis(t *testing.T) {
	redis := respclient.Dial(t, redistest.Start(t).Addr)
	vela := respclient.Dial(t, testnode.StartDefault(t).Addr())
	session := [][]any{
		{"CLIENT", "GETREDIR"}, {"CLIENT", "GETREDIR", "x"}, {"CLIENT", "TRACKINGINFO"},
		{"CLIENT", "TRACKINGINFO", "x"}, {"CLIENT", "CACHING", "yes"}, {"CLIENT", "CACHING", "maybe"},
		{"CLIENT", "CACHING"}, {"CLIENT", "TRACKING"}, {"CLIENT", "TRACKING", "foo"},
		{"CLIENT", "TRACKING", "off"}, {"CLIENT", "TRACKING", "OFF", "bogus"},
		{"CLIENT", "TRACKING", "off", "REDIRECT"}, {"CLIENT", "TRACKING", "off", "REDIRECT", "x"},
		{"CLIENT", "TRACKING", "off", "REDIRECT", "999999"}, {"CLIENT", "TRACKING", "off", "BCAST", "PREFIX", "a", "NOLOOP"},
		{"CLIENT", "TRACKING", "off", "optin", "optout"}, {"CLIENT", "TRACKING", "on", "bogus"},
		{"CLIENT", "NO-EVICT"}, {"CLIENT", "NO-EVICT", "maybe"}, {"CLIENT", "NO-EVICT", "on"},
	}
	sameReplies(t, redis, vela, session)
	for _, c := range []*respclient.Conn{redis, vela} {
		if info := c.Do("CLIENT", "INFO").Value.Text(); !strings.Contains(info, " flags=e ") {
			t.Errorf("CLIENT INFO after NO-EVICT ON: %s", info)
		}
	}
	redis.Do("HELLO", "3")
	vela.Do("HELLO", "3")
	sameReplies(t, redis, vela, [][]any{{"CLIENT", "NO-EVICT", "OFF"}, {"CLIENT", "TRACKINGINFO"}})
	if info := vela.Do("CLIENT", "INFO").Value.Text(); !strings.Contains(info, " flags=N ") {
		t.Errorf("CLIENT INFO after NO-EVICT OFF: %s", info)
	}
	if r := vela.Do("CLIENT", "TRACKING", "ON").Value; !r.IsError() || !strings.Contains(r.Text(), "not supported") {
		t.Errorf("CLIENT TRACKING ON = %v", r)
	}
}
