//go:build e2e

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestPrometheus3ReadEndpoints writes the same series and exemplars by
// remote write 1.0 to Vigil and to a Prometheus 3.16 server, then asks both
// every read endpoint a client calls, by GET and by POST, and compares the
// answers field by field: status code, and the JSON (data, warnings, infos,
// error type and message). Prometheus runs with per-step statistics, which
// Vigil always gives (AMP documents totalQueryableSamplesPerStep).
func TestPrometheus3ReadEndpoints(t *testing.T) {
	promBin := prometheus3(t)
	v := startMonolith(t, t.TempDir())
	ws := createWorkspace(t, v.BaseURL(), "compare")
	vigilBase := workspaceURL(v.BaseURL(), ws)
	promPort, _ := startPrometheusProcess(t, promBin, func(dir string) []string {
		return []string{"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.enable-remote-write-receiver", "--enable-feature=exemplar-storage,promql-per-step-stats"}
	}, func(int) string { return "global:\n  scrape_interval: 15s\n" })
	promBase := fmt.Sprintf("http://127.0.0.1:%d", promPort)

	now := time.Now().Truncate(time.Minute)
	start := now.Add(-10 * time.Minute)
	req := &prompb.WriteRequest{}
	for i, job := range []string{"api", "api", "db", "web", "web", "web"} {
		ts := prompb.TimeSeries{Labels: []prompb.Label{
			{Name: "__name__", Value: "http_requests_total"}, {Name: "instance", Value: fmt.Sprintf("10.0.0.%d:80", i)},
			{Name: "job", Value: job}, {Name: "method", Value: []string{"GET", "POST"}[i%2]},
		}}
		for t := start; !t.After(now); t = t.Add(15 * time.Second) {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t.UnixMilli(), Value: float64(t.Sub(start).Seconds()) * float64(i+1)})
		}
		ts.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: fmt.Sprintf("abc%d", i)}}, Value: float64(i), Timestamp: now.Add(-time.Minute).UnixMilli()}}
		req.Timeseries = append(req.Timeseries, ts)
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "instance", Value: fmt.Sprintf("10.0.0.%d:80", i)}, {Name: "job", Value: job}},
			Samples: []prompb.Sample{{Timestamp: now.Add(-30 * time.Second).UnixMilli(), Value: float64(i % 2)}},
		})
	}
	body := encode(t, req)
	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}
	code, msg := post(t, vigilBase+"/api/v1/remote_write", rw, body)
	require.Equal(t, http.StatusNoContent, code, msg)
	code, msg = post(t, promBase+"/api/v1/write", rw, body)
	require.Equal(t, http.StatusNoContent, code, msg)

	at := fmt.Sprint(now.Unix())
	from, to := fmt.Sprint(start.Unix()), fmt.Sprint(now.Unix())
	for _, c := range []struct {
		path string
		form url.Values
	}{
		{"/api/v1/query", url.Values{"query": {`sum by (job) (rate(http_requests_total[5m]))`}, "time": {at}}},
		{"/api/v1/query", url.Values{"query": {`up == 1`}, "time": {at}}},
		{"/api/v1/query", url.Values{"query": {`rate(up[5m])`}, "time": {at}}}, // an info: not a counter
		{"/api/v1/query", url.Values{"query": {`scalar(sum(up))`}, "time": {at}}},
		{"/api/v1/query", url.Values{"query": {`"a string"`}, "time": {at}}},
		{"/api/v1/query", url.Values{"query": {`http_requests_total{job="db"}[1m]`}, "time": {at}}},
		{"/api/v1/query", url.Values{"query": {`sum(`}, "time": {at}}},
		{"/api/v1/query", url.Values{"query": {`topk(2, http_requests_total)`}, "time": {at}, "stats": {"all"}}},
		{"/api/v1/query_range", url.Values{"query": {`sum by (method) (rate(http_requests_total[1m]))`}, "start": {from}, "end": {to}, "step": {"30"}}},
		{"/api/v1/query_range", url.Values{"query": {`histogram_quantile(0.9, up)`}, "start": {from}, "end": {to}, "step": {"60"}}},
		{"/api/v1/query_range", url.Values{"query": {`up`}, "start": {to}, "end": {from}, "step": {"60"}}},
		{"/api/v1/query_range", url.Values{"query": {`up`}, "start": {from}, "end": {to}, "step": {"0"}}},
		{"/api/v1/labels", nil},
		{"/api/v1/labels", url.Values{"match[]": {`up`}, "start": {from}, "end": {to}}},
		{"/api/v1/labels", url.Values{"limit": {"2"}}},
		{"/api/v1/label/job/values", nil},
		{"/api/v1/label/__name__/values", nil},
		{"/api/v1/label/job/values", url.Values{"match[]": {`http_requests_total{method="GET"}`}, "limit": {"1"}}},
		{"/api/v1/series", url.Values{"match[]": {`http_requests_total{job=~"a.*|d.*"}`}, "start": {from}, "end": {to}}},
		{"/api/v1/series", url.Values{"match[]": {`up`, `http_requests_total{job="db"}`}}},
		{"/api/v1/series", url.Values{}},
		{"/api/v1/query_exemplars", url.Values{"query": {`http_requests_total{job="web"}`}, "start": {from}, "end": {to}}},
		{"/api/v1/format_query", url.Values{"query": {`sum(rate(http_requests_total{job="api"}[5m]))by(job)`}}},
		{"/api/v1/parse_query", url.Values{"query": {`sum by (job) (up) > 0`}}},
		{"/api/v1/metadata", nil},
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			name := fmt.Sprintf("%s %s?%s", method, c.path, c.form.Encode())
			vc, vb := readAPI(t, method, vigilBase+c.path, c.form)
			pc, pb := readAPI(t, method, promBase+c.path, c.form)
			require.Equal(t, pc, vc, "%s\nVigil: %s\nPrometheus: %s", name, vb, pb)
			require.JSONEq(t, comparable(t, pb), comparable(t, vb), name)
		}
	}

	// Build information: Prometheus's fields (the version is the
	// Prometheus release Vigil embeds), and Vigil's name.
	_, vb := readAPI(t, http.MethodGet, vigilBase+"/api/v1/status/buildinfo", nil)
	_, pb := readAPI(t, http.MethodGet, promBase+"/api/v1/status/buildinfo", nil)
	var vi, pi struct {
		Status string         `json:"status"`
		Data   map[string]any `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(vb), &vi))
	require.NoError(t, json.Unmarshal([]byte(pb), &pi))
	require.Equal(t, "success", vi.Status)
	for k := range pi.Data {
		require.Contains(t, vi.Data, k, "buildinfo field %s", k)
	}
	require.Equal(t, "Vigil", vi.Data["application"])
}

// readAPI calls a read endpoint by GET (the form in the URL) or POST (the
// form in the body) and returns the status and body.
func readAPI(t *testing.T, method, u string, form url.Values) (int, string) {
	t.Helper()
	var req *http.Request
	var err error
	if method == http.MethodGet {
		if len(form) > 0 {
			u += "?" + form.Encode()
		}
		req, err = http.NewRequestWithContext(context.Background(), method, u, nil)
	} else {
		req, err = http.NewRequestWithContext(context.Background(), method, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// comparable is an answer without what differs between two servers by
// nature, the timings of stats=all, as JSON.
func comparable(t *testing.T, body string) string {
	t.Helper()
	var m map[string]any
	if json.Unmarshal([]byte(body), &m) != nil {
		b, _ := json.Marshal(body) // not JSON (405's text): as it is
		return string(b)
	}
	if data, ok := m["data"].(map[string]any); ok {
		if stats, ok := data["stats"].(map[string]any); ok {
			delete(stats, "timings")
		}
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}
