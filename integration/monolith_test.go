package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestMonolithWriteQueryRestart pushes with Prometheus's remote-write client,
// reads back with the Prometheus HTTP API client, restarts Vigil on the same
// data directory and reads the same data again (WAL replay).
func TestMonolithWriteQueryRestart(t *testing.T) {
	dir := t.TempDir()
	v := startMonolith(t, dir)
	ws := createWorkspace(t, v.BaseURL(), "restart")

	now := time.Now().Truncate(time.Second)
	start := now.Add(-10 * time.Minute)
	req := &prompb.WriteRequest{}
	for i, job := range []string{"api", "db", "cache"} {
		var samples []prompb.Sample
		for s := 0; s < 10; s++ {
			samples = append(samples, prompb.Sample{
				Timestamp: start.Add(time.Duration(s) * time.Minute).UnixMilli(),
				Value:     float64(i*100 + s),
			})
		}
		req.Timeseries = append(req.Timeseries, series("http_requests_total", map[string]string{"job": job, "instance": "host:9100"}, samples...))
	}
	_, err := remoteWriter(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write").Store(context.Background(), encode(t, req), 0)
	require.NoError(t, err)

	check := func(base string) {
		t.Helper()
		api := promClient(t, workspaceURL(base, ws))
		ctx := context.Background()
		// Instant query at the last sample.
		val, _, _, err := api.Query(ctx, `http_requests_total{job="db"}`, start.Add(9*time.Minute))
		require.NoError(t, err)
		vec := val.(model.Vector)
		require.Len(t, vec, 1)
		require.Equal(t, model.Metric{"__name__": "http_requests_total", "job": "db", "instance": "host:9100"}, vec[0].Metric)
		require.Equal(t, model.SampleValue(109), vec[0].Value)

		// Range query returns every sample of every series, exactly.
		val, _, _, err = api.QueryRange(ctx, `http_requests_total`, promv1.Range{Start: start, End: start.Add(9 * time.Minute), Step: time.Minute})
		require.NoError(t, err)
		m := val.(model.Matrix)
		require.Len(t, m, 3)
		for _, s := range m {
			require.Len(t, s.Values, 10)
			base := map[model.LabelValue]float64{"api": 0, "db": 100, "cache": 200}[s.Metric["job"]]
			for i, p := range s.Values {
				require.Equal(t, start.Add(time.Duration(i)*time.Minute).UnixMilli(), int64(p.Timestamp))
				require.Equal(t, model.SampleValue(base+float64(i)), p.Value)
			}
		}

		// Label lookups.
		names, _, _, err := api.LabelNames(ctx, nil, start, now)
		require.NoError(t, err)
		require.Equal(t, model.LabelNames{"__name__", "instance", "job"}, names)
		values, _, _, err := api.LabelValues(ctx, "job", nil, start, now)
		require.NoError(t, err)
		require.Equal(t, model.LabelValues{"api", "cache", "db"}, values)
	}
	check(v.BaseURL())

	// stats=all reports the queried samples (AMP's billing unit).
	statsURL := workspaceURL(v.BaseURL(), ws) + "/api/v1/query?stats=all&query=" +
		url.QueryEscape(`http_requests_total{job="db"}[10m]`) + fmt.Sprintf("&time=%d", start.Add(9*time.Minute).Unix())
	resp, err := http.Get(statsURL)
	require.NoError(t, err)
	var statsResp struct {
		Data struct {
			Stats struct {
				Samples struct {
					TotalQueryableSamples int `json:"totalQueryableSamples"`
				} `json:"samples"`
			} `json:"stats"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&statsResp))
	resp.Body.Close()
	require.Equal(t, 10, statsResp.Data.Stats.Samples.TotalQueryableSamples)

	// Operational endpoints: /metrics and /ready on the public port, the
	// operator endpoints only on the admin listener.
	get := func(base, path string) string {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	metrics := strings.Split(get(v.BaseURL(), "/metrics"), "\n")
	require.Contains(t, metrics, `vigil_distributor_received_samples_total{workspace="`+ws+`"} 30`)
	require.Contains(t, metrics, "vigil_ingester_ingested_samples_total 30")
	services := get(v.AdminURL(), "/services")
	for _, m := range []string{"distributor", "ingester", "querier", "server"} {
		require.Contains(t, services, m+"\tRunning")
	}
	require.Contains(t, get(v.AdminURL(), "/config"), "target: all")

	// Restart on the same data directory: the WAL brings the data back.
	require.NoError(t, v.Stop())
	v2 := startMonolith(t, dir)
	check(v2.BaseURL())

	// Another workspace sees none of it.
	other := createWorkspace(t, v2.BaseURL(), "other")
	val, _, _, err := promClient(t, workspaceURL(v2.BaseURL(), other)).Query(context.Background(), `http_requests_total`, start.Add(9*time.Minute))
	require.NoError(t, err)
	require.Empty(t, val.(model.Vector))
}

func post(t *testing.T, url string, headers map[string]string, body []byte) (int, string) {
	t.Helper()
	code, msg := postNoFail(url, headers, body)
	require.NotZero(t, code, msg)
	return code, msg
}

// postNoFail is post for goroutines that must not fail the test: a
// transport error is status 0 with the error as the message.
func postNoFail(url string, headers map[string]string, body []byte) (int, string) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBadInput sends malformed remote-write requests; each gets the right
// 4xx and a readable reason, and data accepted before stays queryable.
func TestBadInput(t *testing.T) {
	v := startMonolith(t, t.TempDir())
	ws := createWorkspace(t, v.BaseURL(), "bad-input")
	writeURL := workspaceURL(v.BaseURL(), ws) + "/api/v1/remote_write"
	ts := time.Now().Add(-time.Minute).Truncate(time.Second)

	good := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("accepted_metric", map[string]string{"job": "a"}, prompb.Sample{Timestamp: ts.UnixMilli(), Value: 42}),
	}}
	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}
	code, body := post(t, writeURL, rw, encode(t, good))
	require.Equal(t, http.StatusNoContent, code, body)

	noName := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "job", Value: "a"}},
		Samples: []prompb.Sample{{Timestamp: ts.UnixMilli(), Value: 1}},
	}}}
	dupLabels := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "job", Value: "a"}, {Name: "job", Value: "b"}},
		Samples: []prompb.Sample{{Timestamp: ts.UnixMilli(), Value: 1}},
	}}}
	badLabel := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "bad-name", Value: "a"}},
		Samples: []prompb.Sample{{Timestamp: ts.UnixMilli(), Value: 1}},
	}}}
	// A value that does not compress: random-looking bytes well over 1 MB.
	big := make([]byte, 0, 1100*1024)
	for x := uint32(1); len(big) < cap(big); x = x*1664525 + 1013904223 {
		big = append(big, byte(x>>24))
	}
	oversized := snappy.Encode(nil, big)
	outOfOrder := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("accepted_metric", map[string]string{"job": "a"}, prompb.Sample{Timestamp: ts.Add(-time.Minute).UnixMilli(), Value: 7}),
	}}

	for _, tc := range []struct {
		name     string
		url      string
		headers  map[string]string
		body     []byte
		wantCode int
		wantMsg  string
	}{
		{"garbage body", writeURL, rw, []byte("this is not snappy"), http.StatusBadRequest, "snappy"},
		{"snappy but not protobuf", writeURL, rw, snappy.Encode(nil, []byte("\xff\xff\xff\xff garbage")), http.StatusBadRequest, "protobuf"},
		{"wrong content type", writeURL, map[string]string{"Content-Type": "application/json"}, []byte(`{"a":1}`), http.StatusUnsupportedMediaType, "Content-Type"},
		{"remote write 2.0", writeURL, map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request", "Content-Encoding": "snappy"}, encode(t, good), http.StatusUnsupportedMediaType, "2.0"},
		{"wrong encoding", writeURL, map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, encode(t, good), http.StatusUnsupportedMediaType, "Content-Encoding"},
		{"missing metric name", writeURL, rw, encode(t, noName), http.StatusBadRequest, "without a metric name"},
		{"duplicate label names", writeURL, rw, encode(t, dupLabels), http.StatusBadRequest, "duplicate label name"},
		{"invalid label name", writeURL, rw, encode(t, badLabel), http.StatusBadRequest, "invalid label name"},
		{"oversized body", writeURL, rw, oversized, http.StatusRequestEntityTooLarge, "too large"},
		{"out of order sample", writeURL, rw, encode(t, outOfOrder), http.StatusBadRequest, "out of order"},
		{"unknown workspace", workspaceURL(v.BaseURL(), "ws-does-not-exist") + "/api/v1/remote_write", rw, encode(t, good), http.StatusNotFound, "Workspace not found"},
		{"push without org id", v.BaseURL() + "/api/v1/push", rw, encode(t, good), http.StatusBadRequest, "X-Scope-OrgID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, tc.url, tc.headers, tc.body)
			require.Equal(t, tc.wantCode, code, body)
			require.Contains(t, body, tc.wantMsg)
			require.True(t, strings.HasSuffix(body, "\n"))
		})
	}

	// A request mixing valid and invalid series stores the valid ones and
	// names the invalid one.
	mixed := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		noName.Timeseries[0],
		series("mixed_ok", nil, prompb.Sample{Timestamp: ts.UnixMilli(), Value: 5}),
	}}
	code, body = post(t, writeURL, rw, encode(t, mixed))
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, `received a series without a metric name, series: '{job="a"}'`)

	// An oversized body sent without Content-Length (chunked) is cut off at
	// the limit while it is read.
	req, err := http.NewRequest(http.MethodPost, writeURL, io.MultiReader(bytes.NewReader(oversized)))
	require.NoError(t, err)
	require.Equal(t, int64(0), req.ContentLength, "the body length is unknown to the client")
	for k, v := range rw {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	chunked, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, string(chunked))
	require.Contains(t, string(chunked), "request body too large")

	// The Mimir-compatible path with the tenant header works too.
	mimir := map[string]string{"X-Scope-OrgID": ws}
	for k, v := range rw {
		mimir[k] = v
	}
	code, body = post(t, v.BaseURL()+"/api/v1/push", mimir, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("mimir_path", nil, prompb.Sample{Timestamp: ts.UnixMilli(), Value: 3}),
	}}))
	require.Equal(t, http.StatusNoContent, code, body)

	api := promClient(t, workspaceURL(v.BaseURL(), ws))
	for q, want := range map[string]model.SampleValue{"accepted_metric": 42, "mixed_ok": 5, "mimir_path": 3} {
		val, _, _, err := api.Query(context.Background(), q, ts)
		require.NoError(t, err)
		vec := val.(model.Vector)
		require.Len(t, vec, 1, q)
		require.Equal(t, want, vec[0].Value, q)
	}
	// Queries of an unknown workspace get 404 in Prometheus's error envelope.
	_, _, _, err = promClient(t, workspaceURL(v.BaseURL(), "ws-nope")).Query(context.Background(), "up", ts)
	require.ErrorContains(t, err, "404")
	resp, err = http.Get(workspaceURL(v.BaseURL(), "ws-nope") + "/api/v1/query?query=up")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.JSONEq(t, `{"status":"error","errorType":"not_found","error":"Workspace not found: ws-nope (err-vigil-workspace-not-found)"}`, string(b))
}

// TestPerWorkspaceLimitsReload changes one workspace's limit in the
// overrides file while Vigil runs; only that workspace is affected.
func TestPerWorkspaceLimitsReload(t *testing.T) {
	v, overrides := startWithOverrides(t)
	limited := createWorkspace(t, v.BaseURL(), "limited")
	other := createWorkspace(t, v.BaseURL(), "other")

	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
	body := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("m", map[string]string{"a": "1", "b": "2"}, prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1}),
	}})
	code, msg := post(t, workspaceURL(v.BaseURL(), limited)+"/api/v1/remote_write", rw, body)
	require.Equal(t, http.StatusNoContent, code, msg)

	require.NoError(t, os.WriteFile(overrides, []byte("overrides:\n  "+limited+":\n    max_label_names_per_series: 2\n"), 0o644))
	require.Eventually(t, func() bool {
		code, msg = post(t, workspaceURL(v.BaseURL(), limited)+"/api/v1/remote_write", rw, body)
		return code == http.StatusBadRequest
	}, 10*time.Second, 50*time.Millisecond)
	require.Contains(t, msg, "series has too many labels (actual: 3, limit: 2)")
	code, msg = post(t, workspaceURL(v.BaseURL(), other)+"/api/v1/remote_write", rw, body)
	require.Equal(t, http.StatusNoContent, code, msg)
}
