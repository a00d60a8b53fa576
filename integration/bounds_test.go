package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"runtime"
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
