package ingester

import (
	"context"
	"fmt"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
)

// pushShapes returns a request of a shape that depends on seed: series with
// and without samples, native histograms (integer and float), exemplars,
// labels of every length class, and metadata.
func pushShapes(seed int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for i := 0; i < seed%7; i++ {
		s := prompb.TimeSeries{Labels: []prompb.Label{
			{Name: "__name__", Value: fmt.Sprintf("metric_%d", seed)},
			{Name: "instance", Value: fmt.Sprintf("host-%d-%d", seed, i)},
		}}
		if seed%3 == 0 {
			// A value longer than 127 bytes: a two-byte length.
			s.Labels = append(s.Labels, prompb.Label{Name: "long", Value: fmt.Sprintf("%0200d", i)})
		}
		for j := 0; j < (seed+i)%4; j++ {
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: int64(1000*j + seed), Value: float64(i*j) / 7})
		}
		if (seed+i)%5 == 1 {
			s.Histograms = append(s.Histograms, prompb.Histogram{
				Timestamp: int64(seed), Count: &prompb.Histogram_CountInt{CountInt: 3}, Sum: 1.5, Schema: 0,
				ZeroCount:     &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1},
				PositiveSpans: []prompb.BucketSpan{{Offset: 1, Length: 2}}, PositiveDeltas: []int64{1, 0},
			})
		}
		if (seed+i)%5 == 2 {
			s.Histograms = append(s.Histograms, prompb.Histogram{
				Timestamp: int64(seed), Count: &prompb.Histogram_CountFloat{CountFloat: 2}, Sum: 3, Schema: 1,
				ZeroCount:     &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: 0},
				PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 1}}, PositiveCounts: []float64{2},
			})
		}
		if (seed+i)%4 == 3 {
			s.Exemplars = append(s.Exemplars, prompb.Exemplar{
				Labels: []prompb.Label{{Name: "trace_id", Value: fmt.Sprint(seed)}}, Value: 1, Timestamp: int64(seed),
			})
		}
		req.Timeseries = append(req.Timeseries, s)
	}
	if seed%4 == 1 {
		req.Metadata = []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "m", Help: "h", Unit: "s"}}
	}
	return req
}

// sameRequest compares two decoded requests, treating nil and empty slices
// alike.
func sameRequest(t *testing.T, want, got *prompb.WriteRequest, msg string) {
	t.Helper()
	require.Len(t, got.Timeseries, len(want.Timeseries), msg)
	for i, w := range want.Timeseries {
		g := got.Timeseries[i]
		require.Equal(t, len(w.Labels), len(g.Labels), msg)
		for j := range w.Labels {
			require.Equal(t, w.Labels[j].Name, g.Labels[j].Name, msg)
			require.Equal(t, w.Labels[j].Value, g.Labels[j].Value, msg)
		}
		// Samples by their bits (NaN is a value like any other); unknown
		// fields, which gogo keeps and the decoder skips, do not count.
		require.Equal(t, len(w.Samples), len(g.Samples), msg)
		for j := range w.Samples {
			require.Equal(t, w.Samples[j].Timestamp, g.Samples[j].Timestamp, msg)
			require.Equal(t, math.Float64bits(w.Samples[j].Value), math.Float64bits(g.Samples[j].Value), msg)
		}
		// Histograms and exemplars are decoded by the generated code on both
		// sides: they must encode alike.
		require.Equal(t, len(w.Histograms), len(g.Histograms), msg)
		for j := range w.Histograms {
			wb, _ := w.Histograms[j].Marshal()
			gb, _ := g.Histograms[j].Marshal()
			require.Equal(t, wb, gb, msg)
		}
		require.Equal(t, len(w.Exemplars), len(g.Exemplars), msg)
		for j := range w.Exemplars {
			wb, _ := w.Exemplars[j].Marshal()
			gb, _ := g.Exemplars[j].Marshal()
			require.Equal(t, wb, gb, msg)
		}
	}
	require.Equal(t, len(want.Metadata), len(got.Metadata), msg)
	for i := range want.Metadata {
		wb, _ := want.Metadata[i].Marshal()
		gb, _ := got.Metadata[i].Marshal()
		require.Equal(t, wb, gb, msg)
	}
}

// TestPushDecoderMatchesGeneratedCode decodes a sequence of differently
// shaped Push messages into pooled requests, as the gRPC server does, and
// compares each with gogo's generated decoder. The input buffer is then
// overwritten, as gRPC recycles it: the decoded request must not change.
func TestPushDecoderMatchesGeneratedCode(t *testing.T) {
	pushes := newPushRequests()
	for seed := 0; seed < 60; seed++ {
		raw, err := pushShapes(seed).Marshal()
		require.NoError(t, err)
		var want prompb.WriteRequest
		require.NoError(t, want.Unmarshal(raw))

		p := pushes.Get()
		require.NoError(t, p.Unmarshal(raw))
		require.NoError(t, p.err)
		for i := range raw {
			raw[i] = 0xff
		}
		sameRequest(t, &want, &p.req, fmt.Sprintf("seed %d", seed))
		p.release()
	}
}

// TestPushDecoderRefusesTruncated: every cut of a message either fails or,
// cut on a field boundary, decodes as the generated code does.
func TestPushDecoderRefusesTruncated(t *testing.T) {
	raw, err := pushShapes(6).Marshal()
	require.NoError(t, err)
	for cut := 1; cut < len(raw); cut++ {
		var p pushRequest
		require.NoError(t, p.Unmarshal(raw[:cut]))
		if p.err == nil {
			var want prompb.WriteRequest
			require.NoError(t, want.Unmarshal(raw[:cut]), "cut %d", cut)
			sameRequest(t, &want, &p.req, fmt.Sprintf("cut %d", cut))
		}
	}
}

// TestPushOverGRPC pushes through a real gRPC connection, from several
// goroutines at once, so that pooled requests are reused while others are
// in flight: every series must be stored with its own labels and samples.
func TestPushOverGRPC(t *testing.T) {
	ing := startIngester(t, testConfig(), t.TempDir(), newKV(t))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	NewGRPCServer(ing).Register(srv)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	client := ingesterpb.NewIngesterClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), user.OrgIDHeaderName, "ws-grpc")

	const writers, pushes, perPush = 4, 20, 50
	now := time.Now().UnixMilli()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := 0; p < pushes; p++ {
				req := &prompb.WriteRequest{}
				for s := 0; s < perPush; s++ {
					job := fmt.Sprintf("w%d-s%d-%s", w, s, string(make([]byte, (w*7+s)%40)))
					req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
						// Unsorted on purpose: the server sorts what a remote caller sends.
						Labels:  []prompb.Label{{Name: "job", Value: job}, {Name: "__name__", Value: "m"}},
						Samples: []prompb.Sample{{Timestamp: now - int64(pushes-p)*1000, Value: float64(w*1000 + s*10 + p)}},
					})
				}
				_, err := client.Push(ctx, req)
				require.NoError(t, err)
			}
		}()
	}
	wg.Wait()

	got := read(t, ing, "ws-grpc")
	require.Len(t, got, writers*perPush)
	for w := 0; w < writers; w++ {
		for s := 0; s < perPush; s++ {
			job := fmt.Sprintf("w%d-s%d-%s", w, s, string(make([]byte, (w*7+s)%40)))
			samples := got[fmt.Sprintf("{__name__=%q, job=%q}", "m", job)]
			require.Len(t, samples, pushes, "series of writer %d, number %d", w, s)
			for p, smp := range samples {
				require.Equal(t, float64(w*1000+s*10+p), smp.Value)
			}
		}
	}

	// A message the decoder refuses fails the call as the sender's fault
	// (not an internal error the distributor would retry) and stores nothing.
	raw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: []prompb.Label{{Name: "__name__", Value: "never"}}, Samples: []prompb.Sample{{Timestamp: now, Value: 1}},
	}}}).Marshal()
	require.NoError(t, err)
	err = conn.Invoke(ctx, "/vigil.ingester.v1.Ingester/Push", &rawMessage{raw[:len(raw)-1]}, new(ingesterpb.PushResponse))
	require.Error(t, err)
	require.True(t, apierror.IsClientError(err), "%v", err)
	require.Equal(t, apierror.IDInvalidRequestBody, apierror.From(err).ID)
	require.Len(t, read(t, ing, "ws-grpc"), writers*perPush)
}

// rawMessage sends bytes as they are, to send what no encoder would.
type rawMessage struct{ b []byte }

func (m *rawMessage) Marshal() ([]byte, error) { return m.b, nil }
func (m *rawMessage) Reset()                   {}
func (m *rawMessage) String() string           { return "raw" }
func (m *rawMessage) ProtoMessage()            {}

func FuzzPushDecoder(f *testing.F) {
	for seed := 0; seed < 12; seed++ {
		raw, _ := pushShapes(seed).Marshal()
		f.Add(raw)
	}
	pushes := newPushRequests()
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := pushes.Get()
		defer p.release()
		require.NoError(t, p.Unmarshal(raw)) // must not panic
		var want prompb.WriteRequest
		if p.err != nil || want.Unmarshal(raw) != nil {
			return
		}
		// Where both decoders accept the input, they agree.
		sameRequest(t, &want, &p.req, "")
	})
}
