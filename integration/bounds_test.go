package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestFutureSampleDoesNotBlockWorkspace: a sample stamped a year ahead (a
// clock-skewed host, an exporter sending microseconds) is refused; before
// the fix it moved the workspace's head forward and every normal sample
// after it was refused as out of bounds.
func TestFutureSampleDoesNotBlockWorkspace(t *testing.T) {
	v := startMonolith(t, t.TempDir())
	ws := createWorkspace(t, v.BaseURL(), "future")
	writeURL := workspaceURL(v.BaseURL(), ws) + "/api/v1/remote_write"
	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
	now := time.Now()

	code, body := post(t, writeURL, rw, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("skewed", nil, prompb.Sample{Timestamp: now.AddDate(1, 0, 0).UnixMilli(), Value: 1}),
	}}))
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "too far in the future")

	for i := 0; i < 3; i++ {
		ts := now.Add(time.Duration(i) * time.Second)
		code, body = post(t, writeURL, rw, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			series("normal", nil, prompb.Sample{Timestamp: ts.UnixMilli(), Value: float64(i)}),
		}}))
		require.Equal(t, http.StatusNoContent, code, body)
	}
	val, _, _, err := promClient(t, workspaceURL(v.BaseURL(), ws)).Query(context.Background(), "normal", now.Add(2*time.Second))
	require.NoError(t, err)
	require.Equal(t, model.SampleValue(2), val.(model.Vector)[0].Value)
}

// TestHostileBodiesKeepHeapBounded: bodies under the 1 MB request limit that
// decode to millions of empty elements are refused with 400 without the
// memory they describe being allocated (before the fix: about 6.7 GB and
// 3 GB).
func TestHostileBodiesKeepHeapBounded(t *testing.T) {
	v := startMonolith(t, t.TempDir())
	ws := createWorkspace(t, v.BaseURL(), "hostile")
	writeURL := workspaceURL(v.BaseURL(), ws) + "/api/v1/remote_write"
	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}

	const n = 8 << 20
	labels := bytes.Repeat([]byte{0x0a, 0x00}, n-4)
	for name, raw := range map[string][]byte{
		"8M empty series":           bytes.Repeat([]byte{0x0a, 0x00}, n-4),
		"one series with 8M labels": append(binary.AppendUvarint([]byte{0x0a}, uint64(len(labels))), labels...),
	} {
		t.Run(name, func(t *testing.T) {
			body := snappy.Encode(nil, raw)
			require.Less(t, len(body), 1<<20)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			code, msg := post(t, writeURL, rw, body)
			runtime.ReadMemStats(&after)
			require.Equal(t, http.StatusBadRequest, code, msg)
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(256<<20), "the request allocated %d MB", (after.TotalAlloc-before.TotalAlloc)>>20)
		})
	}
}

// TestQueryLimitsRefuseWithTheirMessage: each per-query limit of a workspace
// (set in the overrides file) refuses a query that reads more, with 422 and
// AMP's wording; another workspace is not limited.
func TestQueryLimitsRefuseWithTheirMessage(t *testing.T) {
	v, overrides := startWithOverrides(t)
	limited := createWorkspace(t, v.BaseURL(), "limited")
	free := createWorkspace(t, v.BaseURL(), "free")
	now := time.Now().Truncate(time.Second)
	req := &prompb.WriteRequest{}
	for i := 0; i < 3; i++ {
		req.Timeseries = append(req.Timeseries, series("m", map[string]string{"i": strconv.Itoa(i)},
			prompb.Sample{Timestamp: now.Add(-time.Minute).UnixMilli(), Value: 1}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 2}))
	}
	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
	for _, ws := range []string{limited, free} {
		code, body := post(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write", rw, encode(t, req))
		require.Equal(t, http.StatusNoContent, code, body)
	}
	query := func(ws, q string) (int, string) {
		resp, err := http.Get(workspaceURL(v.BaseURL(), ws) + "/api/v1/query?" + url.Values{"query": {q}, "time": {strconv.FormatInt(now.Unix(), 10)}}.Encode())
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for limit, msg := range map[string]string{
		"max_fetched_series_per_query: 2":       "the query hit the max number of series limit (limit: 2 series",
		"max_fetched_chunks_per_query: 2":       "the query hit the max number of chunks limit while fetching chunks from ingesters (limit: 2 chunks",
		"max_fetched_samples_per_query: 5":      "the query hit the max number of samples limit (limit: 5 samples",
		"max_fetched_chunk_bytes_per_query: 20": "the query hit the aggregated chunks size limit (limit: 20 bytes",
	} {
		t.Run(limit, func(t *testing.T) {
			require.NoError(t, os.WriteFile(overrides, []byte("overrides:\n  "+limited+":\n    "+limit+"\n"), 0o644))
			var code int
			var body string
			require.Eventually(t, func() bool { code, body = query(limited, "m"); return strings.Contains(body, msg) }, 10*time.Second, 50*time.Millisecond, body)
			require.Equal(t, http.StatusUnprocessableEntity, code, body)
			require.Contains(t, body, msg)
			require.Contains(t, body, `"errorType":"execution"`)
			code, body = query(free, "m")
			require.Equal(t, http.StatusOK, code, body)
		})
	}
}

// TestDeletedWorkspaceLosesItsMetricSeries: the usage metrics carry the
// workspace label, and a deleted workspace's series are removed.
func TestDeletedWorkspaceLosesItsMetricSeries(t *testing.T) {
	v := startMonolith(t, t.TempDir())
	ws := createWorkspace(t, v.BaseURL(), "metrics")
	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
	code, body := post(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write", rw, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("up", nil, prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1}),
	}}))
	require.Equal(t, http.StatusNoContent, code, body)
	metrics := func() string {
		resp, err := http.Get(v.BaseURL() + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	require.Contains(t, metrics(), `vigil_distributor_received_samples_total{workspace="`+ws+`"} 1`)
	require.Contains(t, metrics(), `vigil_ingester_active_series{workspace="`+ws+`"} 1`)

	req, err := http.NewRequest(http.MethodDelete, v.BaseURL()+"/workspaces/"+ws, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.NotContains(t, metrics(), `vigil_distributor_received_samples_total{workspace="`+ws+`"}`)
}
