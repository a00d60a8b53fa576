package distributor

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/push"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

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
			err := d.Push(tenantCtx(), push.NewRequest(*r, nil, nil))
			require.ErrorContains(t, err, "without a metric name")
		})
	}
	few, many := allocs(10), allocs(1000)
	require.Less(t, many-few, float64(100), "allocations grow with the number of invalid series: %v for 10, %v for 1000", few, many)
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
	pr := wrap(t, req, nil)
	err := d.Push(tenant.WithID(context.Background(), "ws-1"), pr)
	require.ErrorContains(t, err, "received a sample whose timestamp is too far in the future (more than 10m0s ahead, -validation.creation-grace-period)")
	require.ErrorContains(t, err, `job="skewed"`)
	require.ErrorContains(t, err, "(err-vigil-too-far-in-future)")
	require.Eventually(t, func() bool { ing.mu.Lock(); defer ing.mu.Unlock(); return ing.series == 2 }, 5*time.Second, time.Millisecond)
	require.Len(t, pr.Timeseries, 2)
	for _, ts := range pr.Timeseries {
		require.Len(t, ts.Samples, 1)
		require.LessOrEqual(t, ts.Samples[0].Timestamp, now.Add(10*time.Minute).UnixMilli())
	}
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
	require.Eventually(t, func() bool { return d.inflight.requests.Load() == 0 }, 5*time.Second, time.Millisecond,
		"every ticket is freed once the replicas are done")
}
