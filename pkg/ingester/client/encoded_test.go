package client

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"

	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// recordingServer is an ingester gRPC server that keeps what it receives.
type recordingServer struct {
	ingesterpb.UnimplementedIngesterServer
	mu   sync.Mutex
	got  []*prompb.WriteRequest
	orgs []string
	n    atomic.Int64
	keep bool
}

func (s *recordingServer) Push(ctx context.Context, req *prompb.WriteRequest) (*ingesterpb.PushResponse, error) {
	s.n.Add(int64(len(req.Timeseries)))
	if s.keep {
		md, _ := metadata.FromIncomingContext(ctx)
		s.mu.Lock()
		s.got = append(s.got, req)
		s.orgs = append(s.orgs, md.Get(user.OrgIDHeaderName)...)
		s.mu.Unlock()
	}
	return &ingesterpb.PushResponse{}, nil
}

func startServers(t testing.TB, n int, keep bool) ([]*recordingServer, []*grpcClient) {
	t.Helper()
	var servers []*recordingServer
	var clients []*grpcClient
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := grpc.NewServer()
		rs := &recordingServer{keep: keep}
		ingesterpb.RegisterIngesterServer(srv, rs)
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(srv.Stop)
		conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		servers = append(servers, rs)
		clients = append(clients, &grpcClient{IngesterClient: ingesterpb.NewIngesterClient(conn), Closer: conn, conn: conn})
	}
	return servers, clients
}

func writeRequest(series int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for i := 0; i < series; i++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{{Name: "__name__", Value: "node_cpu_seconds_total"}, {Name: "cpu", Value: fmt.Sprint(i % 64)},
				{Name: "instance", Value: fmt.Sprintf("host-%d:9100", i/64)}, {Name: "job", Value: "node"}, {Name: "mode", Value: "idle"}},
			Samples: []prompb.Sample{{Timestamp: 1_700_000_000_000 + int64(i), Value: float64(i)}},
		})
	}
	return req
}

// TestEncodedRequestReachesEveryIngester: a request shared by three
// ingesters arrives whole at each, under the workspace of the context, and
// is encoded once. Series given with their bytes are sent as those bytes;
// the others are encoded; the metadata goes too.
func TestEncodedRequestReachesEveryIngester(t *testing.T) {
	servers, clients := startServers(t, 3, true)
	req := writeRequest(100)
	req.Metadata = []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "sent", Help: "Sent with the series."}}
	want, err := req.Marshal()
	require.NoError(t, err)
	// The raw bytes of every second series, as the decoder keeps them.
	raw := make([][]byte, len(req.Timeseries))
	for i := 0; i < len(raw); i += 2 {
		raw[i], err = req.Timeseries[i].Marshal()
		require.NoError(t, err)
	}
	enc := NewEncodedRequest(req, raw, nil, NewEncodeBuffers())
	ctx := tenant.WithID(context.Background(), "ws-1")
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, c.PushEncoded(ctx, enc))
		}()
	}
	wg.Wait()
	for _, s := range servers {
		require.Len(t, s.got, 1)
		got, err := s.got[0].Marshal()
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.Equal(t, req.Metadata, s.got[0].Metadata)
		require.Equal(t, []string{"ws-1"}, s.orgs)
	}
	first, _ := enc.Marshal()
	again, _ := enc.Marshal()
	require.Same(t, &first[0], &again[0], "encoded once")
	require.NotNil(t, enc.buf, "a large encoding is pooled")
	require.Error(t, clients[0].PushEncoded(context.Background(), enc), "no workspace, no push")
	enc.Release()
}

// TestEncodedSubset: an ingester's share of a request holds its series, in
// order, whether they come as bytes or are encoded.
func TestEncodedSubset(t *testing.T) {
	req := writeRequest(10)
	raw := make([][]byte, len(req.Timeseries))
	for i := 1; i < len(raw); i += 3 {
		raw[i], _ = req.Timeseries[i].Marshal()
	}
	idxs := []int{0, 1, 4, 7, 9}
	enc := NewEncodedRequest(req, raw, idxs, NewEncodeBuffers())
	b, err := enc.Marshal()
	require.NoError(t, err)
	var got prompb.WriteRequest
	require.NoError(t, got.Unmarshal(b))
	require.Equal(t, enc.Request().Timeseries, got.Timeseries)
	require.Len(t, got.Timeseries, len(idxs))
	for j, i := range idxs {
		require.Equal(t, req.Timeseries[i], got.Timeseries[j])
	}
	enc.Release()
}

// TestSmallEncodingsAreNotPooled: gRPC sends an encoding of at most 1 KiB
// as the very bytes Marshal returned, possibly after the call gave up at its
// deadline; the buffer must not be reused for another request then.
func TestSmallEncodingsAreNotPooled(t *testing.T) {
	// The threshold is gRPC's own.
	require.True(t, mem.IsBelowBufferPoolingThreshold(smallEncoding))
	require.False(t, mem.IsBelowBufferPoolingThreshold(smallEncoding+1))
	bufs := NewEncodeBuffers()
	for _, n := range []int{1, 2, 5} {
		enc := NewEncodedRequest(writeRequest(n), nil, nil, bufs)
		b, err := enc.Marshal()
		require.NoError(t, err)
		require.LessOrEqual(t, len(b), smallEncoding)
		require.Nil(t, enc.buf, "%d series: not from the pool", n)
		enc.Release()
	}
	// A request just over the threshold is pooled.
	n := 1
	for ; NewEncodedRequest(writeRequest(n), nil, nil, bufs).size() <= smallEncoding; n++ {
	}
	enc := NewEncodedRequest(writeRequest(n), nil, nil, bufs)
	_, err := enc.Marshal()
	require.NoError(t, err)
	require.NotNil(t, enc.buf)
	enc.Release()
}

// BenchmarkPushToThreeIngesters sends one request of 2000 series to three
// ingesters over loopback gRPC, as a distributor does with replication
// factor 3 and three ingesters: each call encoding it, or one encoding
// for all three.
func BenchmarkPushToThreeIngesters(b *testing.B) {
	req := writeRequest(2000)
	ctx := tenant.WithID(context.Background(), "ws-1")
	for _, mode := range []string{"per-call", "encoded"} {
		b.Run(mode, func(b *testing.B) {
			_, clients := startServers(b, 3, false)
			bufs := NewEncodeBuffers()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				enc := NewEncodedRequest(req, nil, nil, bufs)
				var wg sync.WaitGroup
				for _, c := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var err error
						if mode == "encoded" {
							err = c.PushEncoded(ctx, enc)
						} else {
							err = c.Push(ctx, req)
						}
						if err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
				enc.Release()
			}
		})
	}
}

// TestEncodingPanicIsAnError: a request whose encoding panics panics for
// the call that encodes it (its sender recovers, logs and counts it) and is
// an error for every later call, not an empty request.
func TestEncodingPanicIsAnError(t *testing.T) {
	req := writeRequest(3)
	enc := NewEncodedRequest(req, make([][]byte, 1), nil, nil) // raw shorter than the series: out of range
	require.Panics(t, func() { _, _ = enc.Marshal() })
	for range 2 {
		b, err := enc.Marshal()
		require.ErrorContains(t, err, "encode push request: panic")
		require.Nil(t, b)
	}
}

// TestEncodedRequestShareOfMetadata: indexes from the number of series on
// name metadata entries; the share holds those series and entries, in
// process and encoded alike.
func TestEncodedRequestShareOfMetadata(t *testing.T) {
	req := writeRequest(3)
	req.Metadata = []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "a", Help: "A."},
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "b_total", Help: "B.", Unit: "seconds"},
	}
	for _, tc := range []struct {
		name       string
		idxs       []int
		series     []int
		metadataAt []int
	}{
		{"all", nil, []int{0, 1, 2}, []int{0, 1}},
		{"series and metadata", []int{1, 4}, []int{1}, []int{1}},
		{"metadata only", []int{3}, nil, []int{0}},
		{"series only", []int{0, 2}, []int{0, 2}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := &prompb.WriteRequest{}
			for _, i := range tc.series {
				want.Timeseries = append(want.Timeseries, req.Timeseries[i])
			}
			for _, i := range tc.metadataAt {
				want.Metadata = append(want.Metadata, req.Metadata[i])
			}
			enc := NewEncodedRequest(req, nil, tc.idxs, nil)
			got := enc.Request()
			require.Len(t, got.Timeseries, len(want.Timeseries))
			for i := range want.Timeseries {
				require.Equal(t, want.Timeseries[i], got.Timeseries[i])
			}
			require.Equal(t, want.Metadata, got.Metadata)
			b, err := enc.Marshal()
			require.NoError(t, err)
			var decoded prompb.WriteRequest
			require.NoError(t, decoded.Unmarshal(b))
			require.Equal(t, len(want.Timeseries), len(decoded.Timeseries))
			require.Equal(t, want.Metadata, decoded.Metadata)
		})
	}
}
