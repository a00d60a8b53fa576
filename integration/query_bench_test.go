package integration

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/prometheus/prompb"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/vigil-metrics/vigil/internal/bench"
)

// BenchmarkMonolithQuery runs a dashboard-like mix of queries over 10k
// series of 30 minutes (15 s interval), three hours old, in a monolithic
// Vigil, through the Prometheus HTTP API, and reports the CPU each mix takes
// (client and server share the process; the client's share is small). The
// same data is served by the ingester, then, flushed to object storage, by
// the store-gateway alone.
func BenchmarkMonolithQuery(b *testing.B) {
	b.Run("ingesters", func(b *testing.B) { benchQueryMix(b, false) })
	b.Run("store-gateway", func(b *testing.B) { benchQueryMix(b, true) })
}

func benchQueryMix(b *testing.B, fromStore bool) {
	const seriesTotal, batch, samples = 10_000, 2000, 120
	dir := b.TempDir()
	flags := unlimitedIngestion
	if fromStore {
		flags = append(storeFlags, unlimitedIngestion...)
	}
	v := startMonolith(&testing.T{}, dir, flags...)
	defer func() { _ = v.Stop() }()
	ws := createWorkspace(&testing.T{}, v.BaseURL(), "query-bench")
	writeURL := workspaceURL(v.BaseURL(), ws) + "/api/v1/remote_write"
	end := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	start := end.Add(-time.Duration(samples) * 15 * time.Second)
	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
	for s := 0; s < samples; s++ {
		for i := 0; i < seriesTotal/batch; i++ {
			req := &prompb.WriteRequest{}
			for j := i * batch; j < (i+1)*batch; j++ {
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
					Labels:  bench.NodeSeriesLabels(j),
					Samples: []prompb.Sample{{Timestamp: start.Add(time.Duration(s) * 15 * time.Second).UnixMilli(), Value: float64(s * j)}},
				})
			}
			if code, msg := postNoFail(writeURL, rw, encode(b, req)); code != http.StatusNoContent {
				b.Fatalf("HTTP %d: %s", code, msg)
			}
		}
	}
	if fromStore {
		resp, err := http.Post("http://"+v.AdminAddr()+"/ingester/flush", "", nil)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			b.Fatalf("flush: %v %v", err, resp)
		}
		resp.Body.Close()
		bkt, err := filesystem.NewBucket(filepath.Join(dir, "bucket"))
		if err != nil {
			b.Fatal(err)
		}
		waitForBlocks(b, bkt, ws, 1)
		time.Sleep(1100 * time.Millisecond) // the querier's index is at most a second old
	}
	api := promClient(&testing.T{}, workspaceURL(v.BaseURL(), ws))
	r := promv1.Range{Start: start, End: end, Step: 15 * time.Second}
	ctx := context.Background()
	mix := func() {
		for _, q := range []string{
			`sum by (cpu) (rate(node_cpu_seconds_total[5m]))`,
			`topk(5, rate(node_cpu_seconds_total{cpu="3"}[1m]))`,
			`count(node_cpu_seconds_total)`,
			`avg_over_time(node_cpu_seconds_total{pod="node-exporter-7"}[10m])`,
		} {
			if _, _, _, err := api.QueryRange(ctx, q, r); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, _, err := api.Query(ctx, `sum(node_cpu_seconds_total)`, end); err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := api.Series(ctx, []string{`node_cpu_seconds_total{cpu="1"}`}, start, end); err != nil {
			b.Fatal(err)
		}
	}
	mix() // warm up
	b.ResetTimer()
	cpu := bench.ProcessCPU()
	for i := 0; i < b.N; i++ {
		mix()
	}
	b.StopTimer()
	b.ReportMetric((bench.ProcessCPU()-cpu).Seconds()*1000/float64(b.N), "cpu-ms/mix")
}
