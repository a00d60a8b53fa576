//go:build e2e

package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// TestHonestQueryUnderAttack: the hostile queries of the read path's
// threat model, sent through the public port one after the other while
// another client's honest query runs in a loop: each is refused in under
// a second, the process's heap grows by less than 256 MB, and every
// honest query answers, within 2 s each.
func TestHonestQueryUnderAttack(t *testing.T) {
	v := startMonolith(t, t.TempDir(), unlimitedIngestion...)
	ws := createWorkspace(t, v.BaseURL(), "attack")
	base := workspaceURL(v.BaseURL(), ws)
	now := time.Now().Truncate(time.Second)
	req := &prompb.WriteRequest{}
	for i := 0; i < 1000; i++ {
		var samples []prompb.Sample
		for j := 20; j >= 0; j-- {
			samples = append(samples, prompb.Sample{Timestamp: now.Add(-time.Duration(j) * 15 * time.Second).UnixMilli(), Value: float64(20 - j)})
		}
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: fmt.Sprintf("m%d_total", i%50)}, {Name: "i", Value: fmt.Sprint(i)}}, Samples: samples})
	}
	code, msg := postNoFail(base+"/api/v1/remote_write", map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}, encode(t, req))
	require.Equal(t, http.StatusNoContent, code, msg)

	runtime.GC()
	baseline := heapInuse()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the heap, every 5 ms
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				if h := heapInuse(); h > peak.Load() {
					peak.Store(h)
				}
			}
		}
	}()
	var honest []time.Duration
	var honestErr error
	go func() { // another client's dashboard
		defer wg.Done()
		api := promClient(t, base)
		for {
			select {
			case <-stop:
				return
			default:
			}
			began := time.Now()
			val, _, _, err := api.Query(context.Background(), `sum(rate(m7_total[5m]))`, now)
			if err == nil && len(val.(model.Vector)) != 1 {
				err = fmt.Errorf("want one series, got %v", val)
			}
			if err != nil && honestErr == nil {
				honestErr = err
			}
			honest = append(honest, time.Since(began))
		}
	}()

	chain := func(term, op string, n int) string { return strings.TrimSuffix(strings.Repeat(term+op, n), op) }
	for _, h := range []struct {
		name, path, param, expr string
	}{
		{"100,000 nested parentheses", "/api/v1/query", "query", strings.Repeat("(", 100_000) + "1" + strings.Repeat(")", 100_000)},
		{"a sum of 3,000 rates of every series", "/api/v1/query", "query", "sum(" + chain(`rate({__name__=~".+"}[5m])`, " + ", 3000) + ")"},
		{"a regular expression of 1 MB", "/api/v1/query", "query", `up{job=~"` + strings.Repeat("x.", 520_000) + `"}`},
		{"a megabyte of binary operators", "/api/v1/query", "query", chain("up", " and ", 140_000)},
		{"a regular expression of 1 MB in match[]", "/api/v1/series", "match[]", `up{job=~"` + strings.Repeat("x.", 520_000) + `"}`},
	} {
		began := time.Now()
		resp, err := http.PostForm(base+h.path, url.Values{h.param: {h.expr}, "time": {fmt.Sprint(now.Unix())}})
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(began)
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "%s: %.300s", h.name, body)
		require.Less(t, took, time.Second, "%s: refused in %s", h.name, took)
		t.Logf("%s (%d bytes): refused in %s: %.200s", h.name, len(h.expr), took, body)
	}
	time.Sleep(200 * time.Millisecond) // one more honest query after the last one
	close(stop)
	wg.Wait()
	require.NoError(t, honestErr)
	require.NotEmpty(t, honest)
	growth := int64(peak.Load()) - int64(baseline)
	t.Logf("heap in use: %d MB before, %d MB at most while attacked; %d honest queries, the slowest in %s", baseline>>20, peak.Load()>>20, len(honest), slices.Max(honest))
	require.Less(t, growth, int64(256<<20), "the heap grew by %d MB", growth>>20)
	require.Less(t, slices.Max(honest), 2*time.Second)
}
