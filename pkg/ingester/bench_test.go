package ingester

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/pkg/tenant"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

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
				Labels: []prompb.Label{
					{Name: "__name__", Value: "node_cpu_seconds_total"}, {Name: "cluster", Value: "prod-eu"},
					{Name: "cpu", Value: fmt.Sprint(id % 64)}, {Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:9100", id/250%250, id%250)},
					{Name: "job", Value: "node"}, {Name: "mode", Value: "user"}, {Name: "namespace", Value: "monitoring"},
					{Name: "pod", Value: fmt.Sprintf("node-exporter-%d", id/64)}, {Name: "region", Value: "eu-west-1"}, {Name: "zone", Value: "a"},
				},
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
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		send(len(reqs) + i)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/(cpuTime()-cpu).Seconds(), "samples/cpu-s")
}
