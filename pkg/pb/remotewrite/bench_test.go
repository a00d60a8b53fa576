package remotewrite

import (
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/internal/bench"
)

// BenchmarkDecode decodes a request of 2000 node-exporter-like series of
// one sample each into a reused request, keeping every series' bytes.
func BenchmarkDecode(b *testing.B) {
	req := &prompb.WriteRequest{}
	for i := 0; i < 2000; i++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: bench.NodeSeriesLabels(i), Samples: []prompb.Sample{{Timestamp: 1_700_000_000_000, Value: float64(i)}}})
	}
	raw, err := req.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	var (
		got    prompb.WriteRequest
		series [][]byte
	)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		got.Timeseries = got.Timeseries[:0]
		if err := DecodeWithRaw(raw, &got, &series, nil); err != nil {
			b.Fatal(err)
		}
	}
}
