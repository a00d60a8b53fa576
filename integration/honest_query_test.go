//go:build e2e

package integration

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore/providers/filesystem"
)

// TestHonestWeekQuery: the limits that refuse hostile queries leave a long
// but honest dashboard query alone. A week of 1,000 series scraped every
// 5 minutes, cut into blocks and read back from object storage through the
// store-gateway, is queried over the whole week at step 60 s with every
// default limit on, and answers in full.
func TestHonestWeekQuery(t *testing.T) {
	const seriesTotal = 1000
	dir := t.TempDir()
	v := startMonolith(t, dir, append(append([]string{}, storeFlags...), unlimitedIngestion...)...)
	ws := createWorkspace(t, v.BaseURL(), "week")
	writeURL := workspaceURL(v.BaseURL(), ws) + "/api/v1/remote_write"
	end := time.Now().Add(-time.Minute).Truncate(5 * time.Minute)
	start := end.Add(-7 * 24 * time.Hour)
	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
	rounds := 0
	for ts := start; !ts.After(end); ts = ts.Add(5 * time.Minute) {
		req := &prompb.WriteRequest{}
		for i := 0; i < seriesTotal; i++ {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "job", Value: fmt.Sprintf("job-%d", i%10)}, {Name: "pod", Value: fmt.Sprintf("pod-%d", i)}},
				Samples: []prompb.Sample{{Timestamp: ts.UnixMilli(), Value: float64(rounds)}},
			})
		}
		code, msg := postNoFail(writeURL, rw, encode(t, req))
		require.Equal(t, http.StatusNoContent, code, msg)
		rounds++
	}
	// The backfilled week is cut into blocks and shipped; the store-gateway
	// serves it, the ingester the last hour.
	resp, err := http.Post("http://"+v.AdminAddr()+"/ingester/flush", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	bkt, err := filesystem.NewBucket(filepath.Join(dir, "bucket"))
	require.NoError(t, err)
	waitForBlocks(t, bkt, ws, 1)
	time.Sleep(1100 * time.Millisecond) // the querier's index is at most a second old
	api := promClient(t, workspaceURL(v.BaseURL(), ws))
	began := time.Now()
	val, warnings, _, err := api.QueryRange(context.Background(), `sum by (job) (rate(http_requests_total[10m]))`, promv1.Range{Start: start, End: end, Step: time.Minute})
	require.NoError(t, err)
	require.Empty(t, warnings)
	m := val.(model.Matrix)
	require.Len(t, m, 10)
	for _, s := range m {
		// Every step from the second scrape on has two samples in its 10
		// minutes: one point per minute of the week, less the first 5.
		require.Len(t, s.Values, 7*24*60+1-5, s.Metric.String())
		require.InDelta(t, 100.0/300, float64(s.Values[len(s.Values)/2].Value), 1e-9, "100 pods, each +1 per 5 minutes")
	}
	t.Logf("%d rounds of %d series; the week at step 60 s answered in %s", rounds, seriesTotal, time.Since(began))
}
