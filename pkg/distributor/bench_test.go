package distributor

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/internal/bench"
	"github.com/vigil-metrics/vigil/pkg/ingester/client"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
	"github.com/vigil-metrics/vigil/pkg/push"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// BenchmarkPushHandler measures the distributor's share of a remote-write
// request: snappy decode, protobuf unmarshal (as the front door's decoder
// does them), the stages and the hand-off to ingesters that store nothing. Batches of 2000 series with 1 sample each
// cycle over 100k series with 10 labels. With one ingester (monolithic mode)
// nothing is sharded; with three (RF=3) every ingester gets the whole batch,
// encoded once; with six, every series is hashed and each ingester gets
// its share through dskit's DoBatch, encoded for it. The ingesters encode
// what they are sent, as gRPC does, and store nothing.
//
// The "ha" runs send the series of one replica of an HA pair (a
// __replica__ label beside their cluster label): "bare" with every limit
// and HA deduplication off (the replica label is stored), "limits" with
// every limit on (AMP's, the ingestion rate raised out of the way but still
// taken from its bucket) and the replica elected, so deduplication drops
// the replica label of every series: the cost of the stages, side by side.
func BenchmarkPushHandler(b *testing.B) {
	b.Run("ingesters=1", func(b *testing.B) { benchmarkPushHandler(b, 1, false, false) })
	b.Run("ingesters=1,ha,bare", func(b *testing.B) { benchmarkPushHandler(b, 1, true, false) })
	b.Run("ingesters=1,ha,limits", func(b *testing.B) { benchmarkPushHandler(b, 1, true, true) })
	b.Run("ingesters=3,rf=3", func(b *testing.B) { benchmarkPushHandler(b, 3, false, false) })
	b.Run("ingesters=3,rf=3,ha,bare", func(b *testing.B) { benchmarkPushHandler(b, 3, true, false) })
	b.Run("ingesters=3,rf=3,ha,limits", func(b *testing.B) { benchmarkPushHandler(b, 3, true, true) })
	b.Run("ingesters=6,rf=3", func(b *testing.B) { benchmarkPushHandler(b, 6, false, false) })
}

// encodeOnly is an ingester that encodes its requests and drops them.
type encodeOnly struct{}

func (encodeOnly) Push(_ context.Context, req *prompb.WriteRequest) error {
	_, err := req.Marshal()
	return err
}

func (encodeOnly) PushEncoded(_ context.Context, req *client.EncodedRequest) error {
	_, err := req.Marshal()
	return err
}

func benchmarkPushHandler(b *testing.B, ingesters int, replicaLabel, limits bool) {
	const seriesTotal, batch = 100_000, 2000
	bodies := make([][]byte, seriesTotal/batch)
	for i := range bodies {
		req := &prompb.WriteRequest{}
		for j := 0; j < batch; j++ {
			id := i*batch + j
			ls := bench.NodeSeriesLabels(id)
			if replicaLabel {
				// The series carry a cluster label already.
				ls = append(ls, prompb.Label{Name: "__replica__", Value: "replica-a"})
				slices.SortFunc(ls, compareLabelNames)
			}
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  ls,
				Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: float64(id)}},
			})
		}
		raw, err := req.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = snappy.Encode(nil, raw)
	}
	var d *Distributor
	switch ingesters {
	case 1:
		d = newTestDistributor(b, &fakeIngester{})
	case 3:
		d = newTestDistributorWith(b, encodeOnly{}, encodeOnly{}, encodeOnly{})
	default:
		r := &spreadRing{rf: 3}
		for i := 0; i < ingesters; i++ {
			r.instances = append(r.instances, ring.InstanceDesc{Addr: fmt.Sprint(i), Id: fmt.Sprint(i), State: ring.ACTIVE})
		}
		d = newRingDistributor(b, r, func(ring.InstanceDesc) Pusher { return encodeOnly{} })
	}
	d.limits = staticLimits{maxLabels: 70, maxSize: 7 << 10, maxName: 1024, maxValue: 2048, grace: 10 * time.Minute}
	if limits {
		d.limits = staticLimits{maxLabels: 70, maxSize: 7 << 10, maxName: 1024, maxValue: 2048, grace: 10 * time.Minute, pastGrace: time.Hour,
			maxMetadataLength: 1024, maxMetadataPerMetric: 10, rate: 1e12, burst: 1e12, ha: true}
		d.replicas = newTestHATracker(b, newHAStore(b), haTestLimits{maxClusters: 500}, prometheus.NewRegistry())
		d.rates = newRateLimiter(d.limits, fixedMembers(1))
	}
	ctx := tenant.WithID(b.Context(), "ws-bench")
	var (
		dec prompb.WriteRequest
		raw [][]byte
		buf []byte
	)

	b.ReportAllocs()
	b.ResetTimer()
	start := bench.ProcessCPU()
	for i := 0; i < b.N; i++ {
		// Decoded as the remote-write decoder does, into buffers reused
		// once the request is released.
		var err error
		if buf, err = snappy.Decode(buf[:cap(buf)], bodies[i%len(bodies)]); err != nil {
			b.Fatal(err)
		}
		if err := remotewrite.DecodeWithRaw(buf, &dec, &raw, nil); err != nil {
			b.Fatal(err)
		}
		released := make(chan struct{})
		if err := d.Push(ctx, push.NewRequest(dec, raw, nil, func() { close(released) })); err != nil {
			b.Fatal(err)
		}
		<-released
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/(bench.ProcessCPU()-start).Seconds(), "samples/cpu-s")
}
