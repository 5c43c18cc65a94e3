package partition_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestClusterMetrics scrapes a member's /metrics: the ring's size and the silent-peer series
// (README "Routing") are exported.
func TestClusterMetrics(t *testing.T) {
	nodes := testnode.StartCluster(t, 2, func(i int, cfg *config.Config) { cfg.MetricsListen = "127.0.0.1:0" })
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	resp, err := http.Get("http://" + nodes[0].MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nvela_cluster_members 2\n",
		"\nvela_cluster_peers_not_answering 0\n",
		"\nvela_cluster_requests_failed_fast_total 0\n",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
}
