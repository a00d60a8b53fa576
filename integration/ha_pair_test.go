//go:build e2e

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// TestPrometheusAgentHAPair runs a high-availability pair of real
// Prometheus agents, replicas a and b of cluster prod (external labels
// cluster and __replica__), scraping the same target and remote-writing to
// Vigil. One replica is elected: the workspace holds one copy of the
// target's series, with cluster and without __replica__. Killing the
// elected replica's agent moves the election to the other within 40 s, and
// the series has no gap longer than that.
func TestPrometheusAgentHAPair(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	require.NoError(t, err, "prometheus is not installed: run 'make e2e', which installs it")

	v := startMonolith(t, t.TempDir())
	ws := createWorkspace(t, v.BaseURL(), "ha-pair")
	target := strings.TrimPrefix(v.BaseURL(), "http://")
	kill := map[string]func(){}
	for _, replica := range []string{"a", "b"} {
		_, kill[replica] = startPrometheusAgent(t, promBin, "--enable-feature=agent", func(int) string {
			return fmt.Sprintf(`global:
  scrape_interval: 1s
  external_labels:
    cluster: prod
    __replica__: %s
scrape_configs:
  - job_name: vigil
    static_configs:
      - targets: ['%s']
remote_write:
  - url: %s/api/v1/remote_write
    queue_config:
      batch_send_deadline: 1s
`, replica, target, workspaceURL(v.BaseURL(), ws))
		})
	}

	api := promClient(t, workspaceURL(v.BaseURL(), ws))
	query := func(q string, at time.Time) model.Value {
		t.Helper()
		val, _, _, err := api.Query(context.Background(), q, at)
		require.NoError(t, err, q)
		return val
	}
	require.Eventually(t, func() bool {
		val, _, _, err := api.Query(context.Background(), `up{job="vigil"}`, time.Now())
		return err == nil && len(val.(model.Vector)) > 0
	}, 60*time.Second, 500*time.Millisecond, "the pair's samples never became queryable")
	leader := electedReplica(t, v.AdminAddr(), ws)
	require.Contains(t, []string{"a", "b"}, leader)

	// One copy: one series, with cluster and without __replica__, about one
	// sample a second (two replicas stored would be two series, or twice
	// the samples).
	time.Sleep(10 * time.Second)
	now := time.Now()
	up := query(`up{job="vigil"}`, now).(model.Vector)
	require.Len(t, up, 1)
	require.Equal(t, model.LabelValue("prod"), up[0].Metric["cluster"])
	require.NotContains(t, up[0].Metric, model.LabelName("__replica__"))
	require.Empty(t, query(`{__replica__!=""}`, now).(model.Vector), "no series carries __replica__")
	samples := query(`count_over_time(up{job="vigil"}[10s])`, now).(model.Vector)
	require.Len(t, samples, 1)
	require.LessOrEqual(t, float64(samples[0].Value), 12.0, "one replica's samples, one a second")

	// The elected replica's agent dies: the other is elected within 40 s.
	killed := time.Now()
	kill[leader]()
	var next string
	require.Eventually(t, func() bool {
		next = electedReplica(t, v.AdminAddr(), ws)
		return next != leader
	}, 45*time.Second, 250*time.Millisecond, "the election never moved from %s", leader)
	moved := time.Since(killed)
	require.Less(t, moved, 40*time.Second, "the election moved after %s", moved)
	t.Logf("the election moved from %s to %s %s after the kill", leader, next, moved.Round(time.Second))

	// The series goes on from the new replica's samples, no gap over 40 s.
	time.Sleep(5 * time.Second)
	m := query(`up{job="vigil"}[2m]`, time.Now()).(model.Matrix)
	require.Len(t, m, 1)
	var gap time.Duration
	last := m[0].Values[0].Timestamp.Time()
	for _, s := range m[0].Values[1:] {
		gap = max(gap, s.Timestamp.Time().Sub(last))
		last = s.Timestamp.Time()
	}
	require.Less(t, gap, 40*time.Second)
	require.True(t, last.After(killed), "samples of the new replica are stored")
	t.Logf("longest gap in the series: %s", gap)
}

// electedReplica reads the elected replica of cluster prod of workspace ws
// from a distributor's HA tracker page ("" for none).
func electedReplica(t *testing.T, adminAddr, ws string) string {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/distributor/ha-tracker")
	require.NoError(t, err)
	defer resp.Body.Close()
	var page struct {
		Clusters []struct {
			Workspace, Cluster string
			Replica            string `json:"elected_replica"`
		} `json:"clusters"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
	for _, c := range page.Clusters {
		if c.Workspace == ws && c.Cluster == "prod" {
			return c.Replica
		}
	}
	return ""
}
