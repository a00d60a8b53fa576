package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// grafanaWrite is what a Prometheus server sends: a series with an
// exemplar, and, in a request of its own, the metadata of its metrics.
func grafanaWrite(t *testing.T, base, ws string, now time.Time) {
	t.Helper()
	s := series("http_requests_total", map[string]string{"job": "api"},
		prompb.Sample{Timestamp: now.Add(-time.Second).UnixMilli(), Value: 1}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 2})
	s.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "4bf92f3577b34da6"}}, Value: 2, Timestamp: now.UnixMilli()}}
	rw := remoteWriter(t, workspaceURL(base, ws)+"/api/v1/remote_write")
	_, err := rw.Store(context.Background(), encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}}), 0)
	require.NoError(t, err)
	_, err = rw.Store(context.Background(), encode(t, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests served."},
		{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "request_duration_seconds", Help: "Latency.", Unit: "seconds"},
	}}), 0)
	require.NoError(t, err)
}

// checkGrafanaReads reads back, through Prometheus's HTTP API client, what
// grafanaWrite sent: the endpoints Grafana's Prometheus data source calls
// for its metric browser, its exemplars and its feature discovery.
func checkGrafanaReads(t *testing.T, api promv1.API, now time.Time) {
	t.Helper()
	ctx := context.Background()
	md, err := api.Metadata(ctx, "", "")
	require.NoError(t, err)
	require.Equal(t, map[string][]promv1.Metadata{
		"http_requests_total":      {{Type: promv1.MetricTypeCounter, Help: "Requests served."}},
		"request_duration_seconds": {{Type: promv1.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"}},
	}, md)
	md, err = api.Metadata(ctx, "request_duration_seconds", "1")
	require.NoError(t, err)
	require.Equal(t, map[string][]promv1.Metadata{"request_duration_seconds": {{Type: promv1.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"}}}, md)

	ex, err := api.QueryExemplars(ctx, `rate(http_requests_total{job="api"}[5m])`, now.Add(-time.Minute), now.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, ex, 1)
	require.Equal(t, model.LabelSet{"__name__": "http_requests_total", "job": "api"}, ex[0].SeriesLabels)
	require.Len(t, ex[0].Exemplars, 1)
	require.Equal(t, model.LabelSet{"trace_id": "4bf92f3577b34da6"}, ex[0].Exemplars[0].Labels)
	require.Equal(t, model.SampleValue(2), ex[0].Exemplars[0].Value)

	bi, err := api.Buildinfo(ctx)
	require.NoError(t, err)
	require.Regexp(t, `^3\.\d+\.\d+$`, bi.Version)
	require.NotEmpty(t, bi.GoVersion)

	names, _, _, err := api.LabelNames(ctx, []string{`{__name__="http_requests_total"}`}, now.Add(-time.Hour), now.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, model.LabelNames{"__name__", "job"}, names)
}

// TestGrafanaReadEndpoints: on the monolith, metadata and exemplars pushed
// by remote write come back through /api/v1/metadata and
// /api/v1/query_exemplars, build information answers in Prometheus's
// shape, under the workspace's path and under Mimir's /prometheus prefix.
func TestGrafanaReadEndpoints(t *testing.T) {
	v := startMonolith(t, t.TempDir())
	ws := createWorkspace(t, v.BaseURL(), "grafana")
	now := time.Now().Truncate(time.Millisecond)
	grafanaWrite(t, v.BaseURL(), ws, now)
	checkGrafanaReads(t, promClient(t, workspaceURL(v.BaseURL(), ws)), now)

	for path, want := range map[string]int{
		"/prometheus/api/v1/metadata?metric=http_requests_total": http.StatusOK,
		"/prometheus/api/v1/status/buildinfo":                    http.StatusOK,
		"/prometheus/api/v1/metadata?limit=x":                    http.StatusBadRequest,
		// Grafana takes a server that answers this for Thanos.
		"/prometheus/api/v1/status/flags": http.StatusNotFound,
	} {
		req, err := http.NewRequest(http.MethodGet, v.BaseURL()+path, nil)
		require.NoError(t, err)
		req.Header.Set("X-Scope-OrgID", ws)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, "%s: %s", path, body)
		if want == http.StatusOK {
			var env struct {
				Status string          `json:"status"`
				Data   json.RawMessage `json:"data"`
			}
			require.NoError(t, json.Unmarshal(body, &env), path)
			require.Equal(t, "success", env.Status, path)
		}
	}
}
