package ingester

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/internal/bench"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// BenchmarkIngesterPush measures the ingester's append path (labels, TSDB
// head append, WAL write, commit) for batches of 2000 samples cycling over
// 100k active series with 10 labels each.
func BenchmarkIngesterPush(b *testing.B) {
	const seriesTotal, batch = 100_000, 2000
	ing := startIngester(b, testConfig(), b.TempDir(), newKV(b))
	ctx := tenant.WithID(context.Background(), "ws-bench")
	reqs := make([]*prompb.WriteRequest, seriesTotal/batch)
	for i := range reqs {
		reqs[i] = &prompb.WriteRequest{}
		for j := 0; j < batch; j++ {
			id := i*batch + j
			reqs[i].Timeseries = append(reqs[i].Timeseries, prompb.TimeSeries{
				Labels:  bench.NodeSeriesLabels(id),
				Samples: []prompb.Sample{{}},
			})
		}
	}
	start := time.Now().UnixMilli()
	send := func(i int) {
		r := reqs[i%len(reqs)]
		t := start + int64(i/len(reqs))*15_000
		for j := range r.Timeseries {
			r.Timeseries[j].Samples[0] = prompb.Sample{Timestamp: t, Value: float64(i)}
		}
		if err := ing.Push(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	// Create every series first: the benchmark measures steady-state appends.
	for i := range reqs {
		send(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := bench.ProcessCPU()
	for i := 0; i < b.N; i++ {
		send(len(reqs) + i)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/(bench.ProcessCPU()-cpu).Seconds(), "samples/cpu-s")
}
