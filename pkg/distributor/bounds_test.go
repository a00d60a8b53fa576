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

	"github.com/vigil-metrics/vigil/pkg/apierror"
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
			err := d.Push(tenantCtx(), push.NewRequest(*r, nil, nil, nil))
			require.ErrorContains(t, err, "without a metric name")
		})
	}
	few, many := allocs(10), allocs(1000)
	require.Less(t, many-few, float64(100), "allocations grow with the number of invalid series: %v for 10, %v for 1000", few, many)
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

// TestPanicReleasesTheRequest: a push whose handling panics is answered
// 500 and counted, and releases its request (its memory and its place among
// the requests in flight): panics leave the distributor taking pushes.
func TestPanicReleasesTheRequest(t *testing.T) {
	ing := &panickingIngester{}
	ing.armed.Store(true)
	d := newTestDistributorWith(t, ing)
	reg := prometheus.NewRegistry()
	d.metrics = newMetrics(reg)
	var released atomic.Int64
	for range 25 {
		err := d.Push(tenantCtx(), wrap(t, testRequest(2), func() { released.Add(1) }))
		require.Equal(t, http.StatusInternalServerError, apierror.StatusOf(err))
		require.ErrorContains(t, err, "(err-vigil-internal)")
	}
	require.Equal(t, int64(25), released.Load(), "every request is released")
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
	d.metrics = newMetrics(reg)
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
	released := make(chan struct{})
	err := d.Push(tenantCtx(), wrap(t, testRequest(3), func() { close(released) }))
	require.Equal(t, http.StatusServiceUnavailable, apierror.StatusOf(err), "%v", err)
	require.ErrorContains(t, err, "internal error while pushing to ingester")
	<-released // once the replicas are done
}
