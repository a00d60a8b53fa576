package distributor

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/internal/bench"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// BenchmarkPushHandler measures the distributor's share of a remote-write
// request: snappy decode, protobuf unmarshal, validation and the hand-off to
// ingesters that store nothing. Batches of 2000 series with 1 sample each
// cycle over 100k series with 10 labels. With one ingester (monolithic mode)
// nothing is sharded; with three (RF=3) every series is hashed and the batch
// replicated through dskit's DoBatch.
func BenchmarkPushHandler(b *testing.B) {
	b.Run("ingesters=1", func(b *testing.B) { benchmarkPushHandler(b, 1) })
	b.Run("ingesters=3,rf=3", func(b *testing.B) { benchmarkPushHandler(b, 3) })
}

func benchmarkPushHandler(b *testing.B, ingesters int) {
	const seriesTotal, batch = 100_000, 2000
	bodies := make([][]byte, seriesTotal/batch)
	for i := range bodies {
		req := &prompb.WriteRequest{}
		for j := 0; j < batch; j++ {
			id := i*batch + j
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  bench.NodeSeriesLabels(id),
				Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: float64(id)}},
			})
		}
		raw, err := req.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = snappy.Encode(nil, raw)
	}
	var fakes []*fakeIngester
	for i := 0; i < ingesters; i++ {
		fakes = append(fakes, &fakeIngester{})
	}
	d := newTestDistributor(b, fakes...)
	d.limits = staticLimits{maxLabels: 70, maxSize: 7 << 10, maxName: 1024, maxValue: 2048, grace: 10 * time.Minute}
	h := d.PushHandler()
	ctx := tenant.WithID(b.Context(), "ws-bench")

	b.ReportAllocs()
	b.ResetTimer()
	start := bench.ProcessCPU()
	for i := 0; i < b.N; i++ {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(bodies[i%len(bodies)])).WithContext(ctx)
		r.Header.Set("Content-Type", "application/x-protobuf")
		r.Header.Set("Content-Encoding", "snappy")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/(bench.ProcessCPU()-start).Seconds(), "samples/cpu-s")
}
