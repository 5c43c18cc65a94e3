package e2e_test

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/vela-cache/vela/internal/respclient"
)

// sameReplies sends each command to Redis and to Vela, in order, and fails t for each whose
// replies differ.
func sameReplies(t *testing.T, redis, vela *respclient.Conn, commands [][]any) {
	t.Helper()
	for _, args := range commands {
		w, g := redis.Do(args...).Value, vela.Do(args...).Value
		if fmt.Sprint(w) != fmt.Sprint(g) {
			t.Errorf("%v:\n redis: %v\n  vela: %v", args, w, g)
		}
	}
}

// commandTimes are commandstats' times, which differ between any two servers.
var commandTimes = regexp.MustCompile(`usec=\d+,usec_per_call=[\d.]+`)

// infoLines returns the lines of INFO's section name from c, commandstats' times masked and its
// lines sorted (Redis lists them in its hash table's order).
func infoLines(c *respclient.Conn, name string) []string {
	text := strings.TrimSpace(c.Do("INFO", name).Value.Text())
	l := strings.Split(commandTimes.ReplaceAllString(text, "usec=U"), "\r\n")
	if name == "commandstats" {
		sort.Strings(l)
	}
	return l
}
