package api

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/inflight"
	"github.com/vigil-metrics/vigil/pkg/push"
)

// recordingPusher keeps the series count of each request and releases it.
type recordingPusher struct {
	mu     sync.Mutex
	series []int
	err    error
}

func (p *recordingPusher) Push(_ context.Context, req *push.Request) error {
	defer req.Release()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.series = append(p.series, len(req.Timeseries))
	return p.err
}

// pushAPI is an unauthenticated front door serving remote write into p.
func pushAPI(t *testing.T, p Pusher, budget *inflight.Budget, limits PushLimits) *API {
	t.Helper()
	ws := fakeWorkspaces{"ws-1": {Account: "000000000000", ARN: "arn:aws:aps:us-east-1:000000000000:workspace/ws-1", Active: true}}
	a, err := New(Config{AuthMode: AuthNone, AnonymousAccount: "000000000000", ControlPlaneRate: 10}, "us-east-1", ws, nil, nil, budget, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	a.RegisterPush(p, limits)
	return a
}

var testPushLimits = PushLimits{MaxRequestSizeBytes: 1 << 20, MaxDecompressedSizeBytes: 17 << 20}

// postBody sends a snappy-compressed body to the workspace's remote-write route.
func postBody(a *API, body []byte, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "http://h/workspaces/ws-1/api/v1/remote_write", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	for k, v := range header {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, r)
	return rec
}

func encode(t *testing.T, req *prompb.WriteRequest) []byte {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

// allocated returns the bytes allocated while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestRemoteWriteDecoding(t *testing.T) {
	ok := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: []prompb.Label{{Name: "__name__", Value: "up"}}, Samples: []prompb.Sample{{Timestamp: 1, Value: 1}}}}})
	for _, tc := range []struct {
		name   string
		body   []byte
		header map[string]string
		status int
		id     string
	}{
		{"remote write 1.0", ok, nil, http.StatusNoContent, ""},
		{"remote write 1.0 named", ok, map[string]string{"Content-Type": "application/x-protobuf;proto=prometheus.WriteRequest"}, http.StatusNoContent, ""},
		{"remote write 2.0", ok, map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}, http.StatusUnsupportedMediaType, apierror.IDUnsupportedContentType},
		{"json", ok, map[string]string{"Content-Type": "application/json"}, http.StatusUnsupportedMediaType, apierror.IDUnsupportedContentType},
		{"gzip", ok, map[string]string{"Content-Encoding": "gzip"}, http.StatusUnsupportedMediaType, apierror.IDUnsupportedContentType},
		{"not snappy", []byte("hello"), nil, http.StatusBadRequest, apierror.IDInvalidRequestBody},
		{"not protobuf", snappy.Encode(nil, []byte{0xff, 0xff, 0xff}), nil, http.StatusBadRequest, apierror.IDInvalidRequestBody},
		{"too large", bytes.Repeat([]byte{0}, 1<<20+1), nil, http.StatusRequestEntityTooLarge, apierror.IDRequestTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			budget := inflight.NewBudget(1 << 30)
			p := &recordingPusher{}
			a := pushAPI(t, p, budget, testPushLimits)
			rec := postBody(a, tc.body, tc.header)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.id != "" {
				require.Contains(t, rec.Body.String(), "(err-vigil-"+tc.id+")")
				require.Empty(t, p.series, "nothing reached the distributor")
			}
			require.Zero(t, budget.Used(), "the request's memory is given back")
			require.Zero(t, a.pushBytes.Load())
		})
	}
}

// TestHostileBodiesAreRefusedCheaply: requests whose elements cannot all
// be valid are refused with 400 before the memory they would take is
// allocated. Before the fix, the first body allocated about 6.7 GB.
func TestHostileBodiesAreRefusedCheaply(t *testing.T) {
	const n = 8 << 20
	emptySeries := bytes.Repeat([]byte{0x0a, 0x00}, n) // 8M empty series
	wrap := func(field byte, inner []byte) []byte {
		return append(binary.AppendUvarint([]byte{field}, uint64(len(inner))), inner...)
	}
	oneSeries := func(field byte) []byte { // one series with 8M empty labels or samples
		return wrap(0x0a, bytes.Repeat([]byte{field, 0x00}, n))
	}
	for name, raw := range map[string][]byte{
		"8M empty series":            emptySeries,
		"one series with 8M labels":  oneSeries(0x0a),
		"one series with 8M samples": oneSeries(0x12),
		// An exemplar (series field 3) of 8M empty labels (exemplar field 1).
		"an exemplar with 8M labels": wrap(0x0a, wrap(0x1a, bytes.Repeat([]byte{0x0a, 0x00}, n-8))),
		// A histogram (series field 4) of 8M empty positive spans (field 11).
		"a histogram with 8M spans": wrap(0x0a, wrap(0x22, bytes.Repeat([]byte{0x5a, 0x00}, n-8))),
		// ... or of 8M deltas sent unpacked (field 12, varint).
		"a histogram with 8M unpacked deltas": wrap(0x0a, wrap(0x22, bytes.Repeat([]byte{0x60, 0x00}, n-8))),
	} {
		t.Run(name, func(t *testing.T) {
			body := snappy.Encode(nil, raw)
			require.Less(t, len(body), 1<<20, "the body fits the request size limit")
			a := pushAPI(t, &recordingPusher{}, inflight.NewBudget(1<<30), testPushLimits)
			var rec *httptest.ResponseRecorder
			used := allocated(func() { rec = postBody(a, body, nil) })
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), "cannot fit in")
			require.Less(t, used, uint64(256<<20), "refusing the request allocated %d MB", used>>20)
		})
	}
}

// TestOversizedBuffersAreNotPooled: the buffers of a large request go to
// the garbage collector, not back to the pool.
func TestOversizedBuffersAreNotPooled(t *testing.T) {
	d := newRW1Decoder(testPushLimits, inflight.NewBudget(1<<30), new(atomic.Int64), new(atomic.Int64))
	b := d.buffers.Get()
	b.decoded = make([]byte, maxPooledBuffers+1)
	b.release()
	require.NotSame(t, b, d.buffers.Get())
	small := d.buffers.Get()
	small.release()
	require.Same(t, small, d.buffers.Get(), "small buffers are kept")
}

// TestDecodedRequestsTakeFromTheBudget: a request whose body or decoding
// would take the process over its budget of request memory is refused with
// 503 and gives back what it took; a decoded request holds its memory, and
// its place among the requests in flight, until the distributor releases
// it.
func TestDecodedRequestsTakeFromTheBudget(t *testing.T) {
	req := &prompb.WriteRequest{}
	for i := range 5 {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "i", Value: strconv.Itoa(i)}}, Samples: []prompb.Sample{{Timestamp: 1, Value: 1}}})
	}
	for _, tc := range []struct {
		budget int64
		id     string
	}{
		{100, apierror.IDInflightBodyBytes},                      // the body, read 16 KB at a time
		{firstRead + 64, apierror.IDDistributorMaxInflightBytes}, // its decoding
	} {
		budget := inflight.NewBudget(tc.budget)
		a := pushAPI(t, &recordingPusher{}, budget, testPushLimits)
		rec := postBody(a, encode(t, req), nil)
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Contains(t, rec.Body.String(), fmt.Sprintf("(limit: %d bytes", tc.budget))
		require.Contains(t, rec.Body.String(), "(err-vigil-"+tc.id+")")
		require.Zero(t, budget.Used(), "a refused request gives back what it took")
		require.Zero(t, a.pushRequests.Load())
	}

	budget := inflight.NewBudget(1 << 30)
	held := &holdingPusher{}
	a := pushAPI(t, held, budget, testPushLimits)
	require.Equal(t, http.StatusNoContent, postBody(a, encode(t, req), nil).Code)
	require.NotZero(t, budget.Used(), "the request holds its memory until released")
	require.Equal(t, budget.Used(), a.pushBytes.Load())
	require.Equal(t, int64(1), a.pushRequests.Load())
	require.NoError(t, held.req.Reserve(1000), "a holder's additions count too")
	require.Equal(t, a.pushBytes.Load(), budget.Used())
	held.req.Release()
	held.req.Release()
	require.Zero(t, budget.Used())
	require.Zero(t, a.pushRequests.Load())
}

// TestInflightPushRequests: the requests in flight, counted from their
// arrival until the distributor releases them, are bounded; over the
// bound a request is refused with 503 before its body is read.
func TestInflightPushRequests(t *testing.T) {
	held := &holdingPusher{}
	limits := testPushLimits
	limits.MaxInflightPushRequests = 1
	a := pushAPI(t, held, inflight.NewBudget(1<<30), limits)
	body := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "up"}}, Samples: []prompb.Sample{{Timestamp: 1}}}}})
	require.Equal(t, http.StatusNoContent, postBody(a, body, nil).Code)
	rec := postBody(a, body, nil)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Contains(t, rec.Body.String(), "exceeded the allowed number of inflight push requests (limit: 1, -distributor.instance-limits.max-inflight-push-requests)")
	held.req.Release()
	require.Equal(t, http.StatusNoContent, postBody(a, body, nil).Code, "the slot is free again")
}

// holdingPusher keeps the request without releasing it.
type holdingPusher struct{ req *push.Request }

func (h *holdingPusher) Push(_ context.Context, req *push.Request) error { h.req = req; return nil }

// TestRealHistogramsAndExemplarsAreNotTooDense: the density bound leaves
// room for ordinary native histograms and exemplars, small ones included.
func TestRealHistogramsAndExemplarsAreNotTooDense(t *testing.T) {
	small := &histogram.Histogram{
		Schema: 3, Count: 4, Sum: 10.5, ZeroThreshold: 1e-128, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 3, Length: 1}}, PositiveBuckets: []int64{1, 0, 1},
	}
	big := &histogram.Histogram{Schema: 3, Count: 100, Sum: 1234.5, PositiveSpans: []histogram.Span{{Offset: -5, Length: 40}}}
	for i := 0; i < 40; i++ {
		big.PositiveBuckets = append(big.PositiveBuckets, int64(i%3-1))
	}
	req := &prompb.WriteRequest{}
	now := time.Now().UnixMilli()
	for i := 0; i < 500; i++ {
		h := small
		if i%2 == 0 {
			h = big
		}
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:     []prompb.Label{{Name: "__name__", Value: "latency_seconds"}, {Name: "i", Value: strconv.Itoa(i)}},
			Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, h), prompb.FromFloatHistogram(now+1, h.ToFloat(nil))},
			Exemplars:  []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "4bf92f3577b34da6a3ce929d0e0e4736"}}, Value: 0.3, Timestamp: now}},
		})
	}
	p := &recordingPusher{}
	rec := postBody(pushAPI(t, p, inflight.NewBudget(1<<30), testPushLimits), encode(t, req), nil)
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	require.Equal(t, []int{500}, p.series)
}

// TestPushErrorsReachTheSender: the distributor's error reaches the sender
// with its status and ID, as plain text.
func TestPushErrorsReachTheSender(t *testing.T) {
	p := &recordingPusher{err: apierror.New(apierror.TooManyRequests, apierror.IDRateLimited, "ingestion rate limit (10) exceeded while adding 20 samples and 0 metadata")}
	rec := postBody(pushAPI(t, p, inflight.NewBudget(1<<30), testPushLimits), encode(t, &prompb.WriteRequest{}), nil)
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Equal(t, "ingestion rate limit (10) exceeded while adding 20 samples and 0 metadata (err-vigil-ingestion-rate-limited)\n", rec.Body.String())
}
