package distributor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// TestWorkspaceMetricsFollowTheWorkspaces: the usage counters carry the
// workspace; a workspace that stops pushing, or is deleted, loses its series.
func TestWorkspaceMetricsFollowTheWorkspaces(t *testing.T) {
	reg := prometheus.NewRegistry()
	ing := &fakeIngester{}
	var cfg Config
	cfg.MaxRequestSizeBytes, cfg.MaxDecompressedSizeBytes, cfg.RemoteTimeout = 1<<20, 16<<20, 5*time.Second
	r := &fakeRing{instances: []ring.InstanceDesc{{Addr: "a", Id: "a", State: ring.ACTIVE}}}
	d, err := New(cfg, r, func(ring.InstanceDesc) (Pusher, error) { return ing, nil }, defaultTestLimits, nil, nil, reg, log.NewNopLogger())
	require.NoError(t, err)
	now := time.Unix(1_700_000_000, 0)
	d.now = func() time.Time { return now }
	push := func(ws string, req *prompb.WriteRequest) {
		_ = d.Push(tenant.WithID(context.Background(), ws), wrap(t, req, nil))
	}
	ok := func(ts int64) *prompb.WriteRequest {
		return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: lbls("__name__", "up"), Samples: []prompb.Sample{{Timestamp: ts, Value: 1}}}}}
	}
	push("ws-a", ok(now.UnixMilli()))
	push("ws-a", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: lbls("job", "x"), Samples: []prompb.Sample{{Timestamp: 1}}}}})
	push("ws-b", ok(now.UnixMilli()))
	push("ws-b", ok(now.UnixMilli()))
	expect := func(text string) {
		t.Helper()
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(text),
			"vigil_distributor_received_samples_total", "vigil_distributor_discarded_samples_total"))
	}
	expect(`
# HELP vigil_distributor_discarded_samples_total Samples dropped by the write path (rate limit, validation), by workspace and AMP discard reason.
# TYPE vigil_distributor_discarded_samples_total counter
vigil_distributor_discarded_samples_total{reason="missing_metric_name",workspace="ws-a"} 1
# HELP vigil_distributor_received_samples_total Samples (floats and histograms) in remote-write requests that passed validation, by workspace.
# TYPE vigil_distributor_received_samples_total counter
vigil_distributor_received_samples_total{workspace="ws-a"} 1
vigil_distributor_received_samples_total{workspace="ws-b"} 2
`)
	now = now.Add(15 * time.Minute)
	push("ws-b", ok(now.UnixMilli()))
	now = now.Add(10 * time.Minute)
	d.dropInactive()
	expect(`
# HELP vigil_distributor_received_samples_total Samples (floats and histograms) in remote-write requests that passed validation, by workspace.
# TYPE vigil_distributor_received_samples_total counter
vigil_distributor_received_samples_total{workspace="ws-b"} 3
`)
	d.ForgetWorkspace("ws-b")
	expect(``)
}
