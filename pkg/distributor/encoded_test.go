package distributor

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/ingester/client"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
)

// encodingIngester encodes what it is sent, as gRPC would, decodes it as
// an ingester's gRPC server does (remotewrite.Decode), and keeps the
// decoded series by their first label value.
type encodingIngester struct {
	mu  sync.Mutex
	got map[string]prompb.TimeSeries
	md  map[string]int // metadata entries received, by metric name
}

func (e *encodingIngester) Push(_ context.Context, req *prompb.WriteRequest) error {
	raw, err := req.Marshal()
	if err != nil {
		return err
	}
	return e.record(raw)
}

func (e *encodingIngester) PushEncoded(_ context.Context, req *client.EncodedRequest) error {
	raw, err := req.Marshal()
	if err != nil {
		return err
	}
	return e.record(raw)
}

func (e *encodingIngester) record(raw []byte) error {
	var req prompb.WriteRequest
	// The decoded strings alias the bytes decoded: an encoded request's
	// buffer is reused once sent.
	if err := remotewrite.Decode(bytes.Clone(raw), &req, nil); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.got == nil {
		e.got = map[string]prompb.TimeSeries{}
	}
	for _, ts := range req.Timeseries {
		e.got[ts.Labels[0].Value] = ts
	}
	for _, m := range req.Metadata {
		if e.md == nil {
			e.md = map[string]int{}
		}
		e.md[m.MetricFamilyName]++
	}
	return nil
}

// spreadRing has more instances than replicas: key k goes to the rf
// instances from k modulo the instance count on.
type spreadRing struct {
	instances []ring.InstanceDesc
	rf        int
}

func (r *spreadRing) Get(key uint32, _ ring.Operation, _ []ring.InstanceDesc, _, _ []string) (ring.ReplicationSet, error) {
	var set []ring.InstanceDesc
	for i := 0; i < r.rf; i++ {
		set = append(set, r.instances[(int(key)+i)%len(r.instances)])
	}
	return ring.ReplicationSet{Instances: set, MaxErrors: r.rf / 2}, nil
}
func (r *spreadRing) ReplicationFactor() int { return r.rf }
func (r *spreadRing) InstancesCount() int    { return len(r.instances) }

// newRingDistributor returns a distributor on r, reaching its instances
// with get.
func newRingDistributor(t testing.TB, r ring.DoBatchRing, get func(ring.InstanceDesc) Pusher) *Distributor {
	var cfg Config
	cfg.MaxRequestSizeBytes, cfg.MaxDecompressedSizeBytes, cfg.RemoteTimeout = 1<<20, 16<<20, 5e9
	d, err := New(cfg, r, func(inst ring.InstanceDesc) (Pusher, error) { return get(inst), nil },
		defaultTestLimits, nil, nil, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	return d
}

// zoneRing is zone-aware with two instances in zone a and one in zone b,
// replication factor 3: a key gets one instance of each zone, which of the
// two in zone a depending on the key.
type zoneRing struct{ instances []ring.InstanceDesc }

func (r *zoneRing) Get(key uint32, _ ring.Operation, _ []ring.InstanceDesc, _, _ []string) (ring.ReplicationSet, error) {
	return ring.ReplicationSet{Instances: []ring.InstanceDesc{r.instances[key%2], r.instances[2]}, MaxUnavailableZones: 1}, nil
}
func (r *zoneRing) ReplicationFactor() int { return 3 }
func (r *zoneRing) InstancesCount() int    { return len(r.instances) }

// TestTwoInstancesInOneZoneShareItsSeries: no more instances than replicas
// does not mean every instance holds every series: with two ingesters in one
// zone, each gets the series of its keys, and none is left without any.
func TestTwoInstancesInOneZoneShareItsSeries(t *testing.T) {
	r := &zoneRing{}
	ings := map[string]*encodingIngester{}
	for _, addr := range []string{"a1", "a2", "b"} {
		r.instances = append(r.instances, ring.InstanceDesc{Addr: addr, Id: addr, Zone: addr[:1], State: ring.ACTIVE})
		ings[addr] = &encodingIngester{}
	}
	d := newRingDistributor(t, r, func(inst ring.InstanceDesc) Pusher { return ings[inst.Addr] })
	req := &prompb.WriteRequest{}
	for i := 0; i < 50; i++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: lbls("__name__", fmt.Sprintf("s%02d", i)), Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}}})
	}
	require.Equal(t, http.StatusNoContent, pushHTTP(t, d, req).Code)
	count := func(addr string) int {
		ings[addr].mu.Lock()
		defer ings[addr].mu.Unlock()
		return len(ings[addr].got)
	}
	require.Eventually(t, func() bool { return count("a1")+count("a2") == 50 && count("b") == 50 }, 5*time.Second, time.Millisecond)
	require.NotZero(t, count("a1"))
	require.NotZero(t, count("a2"))
}

// TestIngestersGetSeriesAsFixed sends, over HTTP, series the distributor
// passes on unchanged (as their own bytes) and series it fixes (labels
// sorted, empty labels dropped, future samples dropped): every replica of
// every series must arrive as the distributor left it, never as it came,
// whether every ingester gets every series or each gets its share.
func TestIngestersGetSeriesAsFixed(t *testing.T) {
	now := time.Now().UnixMilli()
	future := now + time.Hour.Milliseconds()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("__name__", "pristine", "job", "a"), Samples: []prompb.Sample{{Timestamp: now, Value: 1}}},
		{Labels: lbls("__name__", "unsorted", "z", "1", "a", "2"), Samples: []prompb.Sample{{Timestamp: now, Value: 2}}},
		{Labels: lbls("__name__", "empty", "gone", "", "job", "b"), Samples: []prompb.Sample{{Timestamp: now, Value: 3}}},
		{Labels: lbls("__name__", "future", "job", "c"), Samples: []prompb.Sample{{Timestamp: now, Value: 4}, {Timestamp: future, Value: 5}}},
		{Labels: lbls("__name__", "future_exemplar", "job", "c"), Samples: []prompb.Sample{{Timestamp: now, Value: 4}},
			Exemplars: []prompb.Exemplar{{Labels: lbls("trace_id", "now"), Value: 1, Timestamp: now}, {Labels: lbls("trace_id", "later"), Value: 1, Timestamp: future}}},
		{Labels: lbls("job", "invalid-no-name"), Samples: []prompb.Sample{{Timestamp: now, Value: 6}}},
		{Labels: lbls("__name__", "histogram", "job", "d"), Histograms: []prompb.Histogram{{
			Timestamp: now, Count: &prompb.Histogram_CountInt{CountInt: 1}, ZeroCount: &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1},
		}}, Exemplars: []prompb.Exemplar{{Labels: lbls("trace_id", "x"), Value: 1, Timestamp: now}}},
	}}
	for i := 0; i < 40; i++ { // enough series for every instance of the spread ring
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: lbls("__name__", fmt.Sprintf("bulk_%02d", i), "job", "e"), Samples: []prompb.Sample{{Timestamp: now, Value: float64(i)}}})
	}
	want := map[string]prompb.TimeSeries{}
	for _, ts := range req.Timeseries {
		c := prompb.TimeSeries{Samples: ts.Samples, Histograms: ts.Histograms, Exemplars: ts.Exemplars}
		for _, l := range ts.Labels {
			if l.Value != "" {
				c.Labels = append(c.Labels, l)
			}
		}
		switch c.Labels[0].Value {
		case "unsorted":
			c.Labels = lbls("__name__", "unsorted", "a", "2", "z", "1")
		case "future":
			c.Samples = c.Samples[:1]
		case "future_exemplar":
			c.Exemplars = c.Exemplars[:1]
		case "invalid-no-name":
			continue
		}
		want[c.Labels[0].Value] = c
	}

	for _, tc := range []struct {
		name      string
		instances int
		rf        int
	}{{"every ingester gets every series", 3, 3}, {"each ingester gets its share", 6, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			ings := map[string]*encodingIngester{}
			r := &spreadRing{rf: tc.rf}
			for i := 0; i < tc.instances; i++ {
				addr := fmt.Sprint(i)
				r.instances = append(r.instances, ring.InstanceDesc{Addr: addr, Id: addr, State: ring.ACTIVE})
				ings[addr] = &encodingIngester{}
			}
			d := newRingDistributor(t, r, func(inst ring.InstanceDesc) Pusher { return ings[inst.Addr] })
			rec := pushHTTP(t, d, req)
			require.Equal(t, http.StatusBadRequest, rec.Code, "the invalid series is reported")

			replicas := map[string]int{}
			require.Eventually(t, func() bool {
				total := 0
				for _, ing := range ings {
					ing.mu.Lock()
					total += len(ing.got)
					ing.mu.Unlock()
				}
				return total == tc.rf*len(want)
			}, 5*time.Second, time.Millisecond)
			for addr, ing := range ings {
				for name, got := range ing.got {
					replicas[name]++
					require.Equal(t, want[name], got, "series %s on ingester %s", name, addr)
				}
				if tc.instances > tc.rf {
					require.Less(t, len(ing.got), len(want), "ingester %s got only its share", addr)
				}
			}
			for name := range want {
				require.Equal(t, tc.rf, replicas[name], "replicas of %s", name)
			}
		})
	}
}

// TestMetadataGoesToTheReplicasOfItsName: with more ingesters than
// replicas, each metadata entry reaches the replicas of its metric name's
// key, with series or in a request of its own.
func TestMetadataGoesToTheReplicasOfItsName(t *testing.T) {
	r := &spreadRing{rf: 3}
	ings := map[string]*encodingIngester{}
	for _, addr := range []string{"a", "b", "c", "d", "e"} {
		r.instances = append(r.instances, ring.InstanceDesc{Addr: addr, Id: addr, State: ring.ACTIVE})
		ings[addr] = &encodingIngester{}
	}
	d := newRingDistributor(t, r, func(inst ring.InstanceDesc) Pusher { return ings[inst.Addr] })
	now := time.Now().UnixMilli()
	names := []string{"http_requests_total", "up", "process_cpu_seconds_total"}
	withSeries := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{{Labels: lbls("__name__", "up"), Samples: []prompb.Sample{{Timestamp: now, Value: 1}}}},
		Metadata: []prompb.MetricMetadata{
			{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: names[0], Help: "Requests."},
			{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: names[1], Help: "Up."},
		},
	}
	alone := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: names[2], Help: "CPU."}}}
	require.Equal(t, http.StatusNoContent, pushHTTP(t, d, withSeries).Code)
	require.Equal(t, http.StatusNoContent, pushHTTP(t, d, alone).Code)
	holders := func(name string) []string {
		var out []string
		for _, addr := range []string{"a", "b", "c", "d", "e"} {
			ings[addr].mu.Lock()
			if ings[addr].md[name] > 0 {
				out = append(out, addr)
			}
			ings[addr].mu.Unlock()
		}
		return out
	}
	for _, name := range names {
		rs, err := r.Get(metadataToken("ws-1", name), ring.WriteNoExtend, nil, nil, nil)
		require.NoError(t, err)
		var want []string
		for _, inst := range rs.Instances {
			want = append(want, inst.Addr)
		}
		slices.Sort(want)
		require.Eventually(t, func() bool { return slices.Equal(want, holders(name)) }, 5*time.Second, time.Millisecond, name)
	}
}
