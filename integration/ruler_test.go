package integration

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestRecordingRuleIsWrittenBack: a recording rule of a workspace's rule
// groups namespace is evaluated by the ruler over the workspace's series,
// and its results are written back into the workspace, queryable there and
// nowhere else.
func TestRecordingRuleIsWrittenBack(t *testing.T) {
	v := startMonolith(t, t.TempDir(), "-ruler.poll-interval=200ms", "-ruler.min-evaluation-interval=1s")
	base := v.BaseURL()
	ws, other := createWorkspace(t, base, "rules"), createWorkspace(t, base, "other")
	ctx := context.Background()
	now := time.Now()
	for _, w := range []string{ws, other} {
		_, err := remoteWriter(t, workspaceURL(base, w)+"/api/v1/remote_write").Store(ctx, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			series("up", map[string]string{"job": "a"}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 1}),
			series("up", map[string]string{"job": "b"}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 1}),
		}}), 0)
		require.NoError(t, err)
	}

	createNamespace(t, base, ws, "recording", `groups:
  - name: sums
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum(up)
`)

	api := promClient(t, workspaceURL(base, ws))
	require.Eventually(t, func() bool {
		val, _, _, err := api.Query(ctx, "job:up:sum", time.Now())
		vec, ok := val.(model.Vector)
		return err == nil && ok && len(vec) == 1 && vec[0].Value == 2
	}, 20*time.Second, 100*time.Millisecond, "the rule's result is queryable in its workspace")
	val, _, _, err := promClient(t, workspaceURL(base, other)).Query(ctx, "job:up:sum", time.Now())
	require.NoError(t, err)
	require.Empty(t, val.(model.Vector), "and only there")
}
