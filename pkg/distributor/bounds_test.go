package distributor

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/inflight"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// postBody sends a snappy-compressed body.
func postBody(d *Distributor, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body)).WithContext(tenantCtx())
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	rec := httptest.NewRecorder()
	d.PushHandler().ServeHTTP(rec, r)
	return rec
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
			d := newTestDistributor(t, &fakeIngester{})
			d.cfg.MaxDecompressedSizeBytes = 17 << 20
			var rec *httptest.ResponseRecorder
			used := allocated(func() { rec = postBody(d, body) })
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), "cannot fit in")
			require.Less(t, used, uint64(256<<20), "refusing the request allocated %d MB", used>>20)
		})
	}
}

// TestOnlyTheFirstInvalidSeriesIsFormatted: a request of many invalid
// series formats one error message, not one per series.
func TestOnlyTheFirstInvalidSeriesIsFormatted(t *testing.T) {
	d := newTestDistributor(t, &fakeIngester{})
	req := func(n int) *prompb.WriteRequest {
		r := &prompb.WriteRequest{}
		for i := 0; i < n; i++ {
			r.Timeseries = append(r.Timeseries, prompb.TimeSeries{
				Labels:  lbls("job", strings.Repeat("x", 20), "a", "1", "b", "2"),
				Samples: []prompb.Sample{{Timestamp: 1, Value: 1}},
			})
		}
		return r
	}
	allocs := func(n int) float64 {
		r := req(n)
		all := r.Timeseries
		return testing.AllocsPerRun(5, func() {
			r.Timeseries = all // Push keeps only the valid series
			err := d.Push(tenantCtx(), r, nil)
			require.ErrorContains(t, err, "without a metric name")
		})
	}
	few, many := allocs(10), allocs(1000)
	require.Less(t, many-few, float64(100), "allocations grow with the number of invalid series: %v for 10, %v for 1000", few, many)
}

// TestOversizedBuffersAreNotPooled: the buffers of a large request go to
// the garbage collector, not back to the pool.
func TestOversizedBuffersAreNotPooled(t *testing.T) {
	made := 0
	pool := remotewrite.NewFreeList(1, func() *pushBuffers { made++; return &pushBuffers{} })
	b := &pushBuffers{pool: pool, decoded: make([]byte, maxPooledBuffers+1)}
	b.release()
	require.NotSame(t, b, pool.Get())
	require.Equal(t, 1, made, "the pool was empty")
	small := &pushBuffers{pool: pool}
	small.release()
	require.Same(t, small, pool.Get(), "small buffers are kept")
}

// blockingIngester holds every push until release is closed.
type blockingIngester struct {
	fakeIngester
	entered chan struct{}
	release chan struct{}
}

func (b *blockingIngester) Push(ctx context.Context, req *prompb.WriteRequest) error {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeIngester.Push(ctx, req)
}

func TestInstanceLimits(t *testing.T) {
	t.Run("inflight requests", func(t *testing.T) {
		ing := &blockingIngester{entered: make(chan struct{}, 1), release: make(chan struct{})}
		d := newTestDistributorWith(t, ing)
		d.inflight.limits.MaxInflightPushRequests = 1
		done := make(chan int)
		go func() { done <- pushHTTP(t, d, testRequest(1)).Code }()
		<-ing.entered
		rec := pushHTTP(t, d, testRequest(1))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Contains(t, rec.Body.String(), "exceeded the allowed number of inflight push requests (limit: 1, -distributor.instance-limits.max-inflight-push-requests)")
		close(ing.release)
		require.Equal(t, http.StatusNoContent, <-done)
		go func() { <-ing.entered }()
		require.Equal(t, http.StatusNoContent, pushHTTP(t, d, testRequest(1)).Code, "the slot is free again")
	})
	t.Run("inflight bytes", func(t *testing.T) {
		d := newTestDistributor(t, &fakeIngester{})
		d.inflight.budget = inflight.NewBudget(100)
		rec := pushHTTP(t, d, testRequest(5))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Contains(t, rec.Body.String(), "exceeded the allowed size of inflight push requests (limit: 100 bytes")
		require.Zero(t, d.inflight.bytes.Load(), "a refused request releases what it reserved")
		require.Zero(t, d.inflight.requests.Load())
	})
}

// TestFutureSampleIsRefusedAndTheRestStored: a sample stamped a year ahead
// is dropped with too_far_in_future; the other samples of the request,
// also of the same series, are stored.
func TestFutureSampleIsRefusedAndTheRestStored(t *testing.T) {
	ing := &fakeIngester{}
	d := newTestDistributor(t, ing)
	now := time.Now()
	d.now = func() time.Time { return now }
	future := now.Add(365 * 24 * time.Hour).UnixMilli()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("__name__", "up", "job", "skewed"), Samples: []prompb.Sample{{Timestamp: future, Value: 1}}},
		{Labels: lbls("__name__", "up", "job", "mixed"), Samples: []prompb.Sample{{Timestamp: now.UnixMilli(), Value: 1}, {Timestamp: future, Value: 2}}},
		{Labels: lbls("__name__", "up", "job", "ok"), Samples: []prompb.Sample{{Timestamp: now.Add(9 * time.Minute).UnixMilli(), Value: 1}}},
	}}
	err := d.Push(tenant.WithID(context.Background(), "ws-1"), req, nil)
	require.ErrorContains(t, err, "received a sample whose timestamp is too far in the future (more than 10m0s ahead, -validation.creation-grace-period)")
	require.ErrorContains(t, err, `job="skewed"`)
	require.ErrorContains(t, err, "(err-vigil-too-far-in-future)")
	require.Eventually(t, func() bool { ing.mu.Lock(); defer ing.mu.Unlock(); return ing.series == 2 }, 5*time.Second, time.Millisecond)
	require.Len(t, req.Timeseries, 2)
	for _, ts := range req.Timeseries {
		require.Len(t, ts.Samples, 1)
		require.LessOrEqual(t, ts.Samples[0].Timestamp, now.Add(10*time.Minute).UnixMilli())
	}
}

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
			Labels:     lbls("__name__", "latency_seconds", "i", strconv.Itoa(i)),
			Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, h), prompb.FromFloatHistogram(now+1, h.ToFloat(nil))},
			Exemplars:  []prompb.Exemplar{{Labels: lbls("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"), Value: 0.3, Timestamp: now}},
		})
	}
	d := newTestDistributor(t, &fakeIngester{})
	rec := pushHTTP(t, d, req)
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
}

// panickingIngester panics on every push while armed.
type panickingIngester struct {
	fakeIngester
	armed atomic.Bool
}

func (p *panickingIngester) Push(ctx context.Context, req *prompb.WriteRequest) error {
	if p.armed.Load() {
		panic("ingester bug")
	}
	return p.fakeIngester.Push(ctx, req)
}

// TestPanicFreesTheTicket: a push whose handling panics is answered 500 and
// counted, and frees its in-flight ticket: more panics than the in-flight
// limit leave the distributor taking pushes.
func TestPanicFreesTheTicket(t *testing.T) {
	ing := &panickingIngester{}
	ing.armed.Store(true)
	d := newTestDistributorWith(t, ing)
	d.inflight.limits.MaxInflightPushRequests = 10
	reg := prometheus.NewRegistry()
	d.metrics = newMetrics(reg, d.inflight)
	for range 25 {
		rec := pushHTTP(t, d, testRequest(2))
		require.Equal(t, http.StatusInternalServerError, rec.Code)
		require.Contains(t, rec.Body.String(), "(err-vigil-internal)")
	}
	require.Zero(t, d.inflight.requests.Load(), "every ticket is freed")
	require.Zero(t, d.inflight.bytes.Load())
	require.Zero(t, d.inflight.budget.Used())
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_distributor_push_panics_total Panics recovered while handling a remote-write request (answered 500) or pushing it to one ingester (a failed replica); the log has the stack.
# TYPE vigil_distributor_push_panics_total counter
vigil_distributor_push_panics_total 25
`), "vigil_distributor_push_panics_total"))

	ing.armed.Store(false)
	rec := pushHTTP(t, d, testRequest(2))
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
}

// TestReplicaPanicIsAFailedReplica: with three replicas, an ingester push
// that panics (on DoBatch's goroutine, where it would end the process)
// counts as one failed replica: the write succeeds on the other two; when
// every replica panics the write is refused with 503, and no ticket leaks.
func TestReplicaPanicIsAFailedReplica(t *testing.T) {
	bad := &panickingIngester{}
	bad.armed.Store(true)
	good1, good2 := &fakeIngester{}, &fakeIngester{}
	d := newTestDistributorWith(t, good1, bad, good2)
	reg := prometheus.NewRegistry()
	d.metrics = newMetrics(reg, d.inflight)
	rec := pushHTTP(t, d, testRequest(3))
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	require.Eventually(t, func() bool { return testutil.ToFloat64(d.metrics.panics) == 1 }, 5*time.Second, time.Millisecond)

	all := []*panickingIngester{{}, {}, {}}
	var pushers []Pusher
	for _, p := range all {
		p.armed.Store(true)
		pushers = append(pushers, p)
	}
	d = newTestDistributorWith(t, pushers...)
	rec = pushHTTP(t, d, testRequest(3))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), "internal error while pushing to ingester")
	require.Eventually(t, func() bool { return d.inflight.requests.Load() == 0 && d.inflight.budget.Used() == 0 }, 5*time.Second, time.Millisecond,
		"every ticket is freed once the replicas are done")
}
