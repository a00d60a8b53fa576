package ingester

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
)

type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// fakeSeriesLimits gives every workspace the same limits.
type fakeSeriesLimits struct {
	mu                      sync.Mutex
	quota, floor, perMetric int
}

func (f *fakeSeriesLimits) set(quota, floor, perMetric int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.quota, f.floor, f.perMetric = quota, floor, perMetric
}

func (f *fakeSeriesLimits) MaxGlobalSeriesPerUser(string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.quota
}

func (f *fakeSeriesLimits) SeriesCapacityMinimum(string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.floor
}

func (f *fakeSeriesLimits) MaxGlobalSeriesPerMetric(string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.perMetric
}

// newLimitedIngester returns a started ingester whose series limits are
// refreshed only when the test says, on its clock.
func newLimitedIngester(t *testing.T, cfg Config, dir string, limits SeriesLimits, clk *fakeClock, heap *atomic.Uint64) *Ingester {
	t.Helper()
	ing, err := New(cfg, dir, 9095, testBucket(t, dir), ringmember.Store{Client: newKV(t)}, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	if limits != nil {
		ing.SetSeriesLimits(limits)
	}
	ing.now = clk.now
	ing.limitsRefresh = time.Hour
	if heap != nil {
		require.NotNil(t, ing.guard)
		ing.guard.read = heap.Load
		ing.guard.sample() // in force for the WAL replay already
	}
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), ing) })
	return ing
}

// pass moves the clock on by d, refreshing the limits every 15 s as the
// ingester does.
func pass(ing *Ingester, clk *fakeClock, d time.Duration) {
	for end := clk.now().Add(d); clk.now().Before(end); {
		clk.add(seriesRefresh)
		ing.refreshSeriesLimits()
	}
}

func newSeries(metric, prefix string, from, to int, ts int64) []prompb.TimeSeries {
	var out []prompb.TimeSeries
	for n := from; n < to; n++ {
		out = append(out, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: metric}, {Name: "job", Value: fmt.Sprint(prefix, n)}},
			Samples: []prompb.Sample{{Timestamp: ts, Value: float64(n)}},
		})
	}
	return out
}

func TestRingShareLocal(t *testing.T) {
	const tenMillion = 10_000_000
	for _, tc := range []struct {
		name   string
		share  ringShare
		global int
		want   int64
	}{
		{"RF 3, three zones of 4: a zone's ingesters share the limit", ringShare{rf: 3, zoneAware: true, zones: 3, inZone: 4, instances: 12}, tenMillion, 2_500_000},
		{"RF 3, three zones, 5 in this zone", ringShare{rf: 3, zoneAware: true, zones: 3, inZone: 5, instances: 13}, tenMillion, 2_000_000},
		{"RF 3, three zones, 7 in this zone: rounded up", ringShare{rf: 3, zoneAware: true, zones: 3, inZone: 7, instances: 21}, tenMillion, 1_428_572},
		{"RF 3, four zones of 2", ringShare{rf: 3, zoneAware: true, zones: 4, inZone: 2, instances: 8}, tenMillion, 3_750_000},
		{"RF 3, zone-aware with one zone left: one replica", ringShare{rf: 3, zoneAware: true, zones: 1, inZone: 2, instances: 2}, tenMillion, 5_000_000},
		{"RF 3, no zones, 6 ingesters", ringShare{rf: 3, instances: 6}, tenMillion, 5_000_000},
		{"RF 3, no zones, 7 ingesters: rounded up", ringShare{rf: 3, instances: 7}, tenMillion, 4_285_715},
		{"RF 3, no zones, 2 ingesters: never above the global limit", ringShare{rf: 3, instances: 2}, tenMillion, tenMillion},
		{"one ingester", ringShare{rf: 1, instances: 1}, tenMillion, tenMillion},
		{"RF 3, one ingester (a fresh ring)", ringShare{rf: 3, instances: 1}, tenMillion, tenMillion},
		{"ring not seen yet", ringShare{rf: 3, zoneAware: true}, tenMillion, tenMillion},
		{"a small limit never becomes 0 (no limit)", ringShare{rf: 3, instances: 100}, 1, 1},
		{"0 stays no limit", ringShare{rf: 3, instances: 6}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.share.local(tc.global))
		})
	}
}

type fakeRing []ring.InstanceDesc

func (f fakeRing) GetAllHealthy(ring.Operation) (ring.ReplicationSet, error) {
	return ring.ReplicationSet{Instances: f}, nil
}

// TestRingShareFromRing: the healthy ingesters of the ring, and of this
// ingester's zone, divide the limits.
func TestRingShareFromRing(t *testing.T) {
	var healthy fakeRing
	for z, n := range map[string]int{"zone-a": 4, "zone-b": 4, "zone-c": 3} {
		for k := 0; k < n; k++ {
			healthy = append(healthy, ring.InstanceDesc{Id: fmt.Sprint(z, k), Zone: z})
		}
	}
	for _, zoneAware := range []bool{true, false} {
		cfg := testConfig()
		cfg.Ring.ReplicationFactor = 3
		cfg.Ring.ZoneAwarenessEnabled, cfg.Ring.InstanceZone = zoneAware, "zone-a"
		dir := t.TempDir()
		ing, err := New(cfg, dir, 9095, testBucket(t, dir), ringmember.Store{Client: newKV(t)}, prometheus.NewRegistry(), log.NewNopLogger())
		require.NoError(t, err)
		require.Equal(t, int64(10_000_000), ing.share.Load().local(10_000_000), "without a ring an ingester holds the whole limit")
		ing.SetRing(healthy)
		ing.refreshRingShare()
		if zoneAware {
			require.Equal(t, ringShare{rf: 3, zoneAware: true, zones: 3, inZone: 4, instances: 11}, *ing.share.Load())
			require.Equal(t, int64(2_500_000), ing.share.Load().local(10_000_000))
		} else {
			require.Equal(t, int64(2_727_273), ing.share.Load().local(10_000_000))
		}
	}
}

func TestPerUserLimitTextAsAMP(t *testing.T) {
	share := ringShare{rf: 3, zoneAware: true, zones: 3, inZone: 4}
	st := newSeriesLimitState(10_000_000, 2_000_000, 0, 1_000_000, share)
	require.Equal(t, int64(2_000_000), st.capacity, "twice the baseline, over the floor's share of 500,000")
	require.Equal(t, "per-user series limit of 8000000 exceeded, Capacity from 2,000,000 to 10,000,000 is automatically adjusted based on the last 30 min of usage. "+
		"If throttled above 10,000,000 or in case of incoming surges, please contact administrator to raise it. (local limit: 0 global limit: 10000000 actual local limit: 2000000)", st.userErr.Error())

	st = newSeriesLimitState(10_000_000, 0, 0, 1_000_000, share)
	require.Equal(t, int64(2_500_000), st.capacity, "no floor: the quota's share")
	require.Equal(t, "per-user series limit of 10000000 exceeded, please contact administrator to raise it. (local limit: 0 global limit: 10000000 actual local limit: 2500000)", st.userErr.Error())

	require.Nil(t, newSeriesLimitState(0, 2_000_000, 0, 5, share), "no quota, no per-metric limit: nothing to enforce")
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 2_000_000: "2,000,000", 10_000_000: "10,000,000", 123456789: "123,456,789"} {
		require.Equal(t, want, thousands(n))
	}
}

// TestAdaptiveSeriesCapacity: a workspace may have twice its average of the
// last 30 minutes, at least the floor and at most the quota (scaled down:
// floor 20, quota 100).
func TestAdaptiveSeriesCapacity(t *testing.T) {
	clk := newFakeClock()
	limits := &fakeSeriesLimits{}
	limits.set(100, 20, 0)
	ing := newLimitedIngester(t, testConfig(), t.TempDir(), limits, clk, nil)
	discarded := ing.metrics.discardedSamples.WithLabelValues("ws-1", reasonPerUserSeries)
	now := time.Now().UnixMilli()
	step := func() int64 { now++; return now }
	ampText := func(capacity, local int) string {
		return fmt.Sprintf("per-user series limit of %d exceeded, Capacity from 20 to 100 is automatically adjusted based on the last 30 min of usage. "+
			"If throttled above 100 or in case of incoming surges, please contact administrator to raise it. (local limit: 0 global limit: 100 actual local limit: %d)", capacity, local)
	}
	refused := func(err error, capacity int) {
		t.Helper()
		require.Error(t, err)
		require.Equal(t, http.StatusBadRequest, apierror.StatusOf(err))
		e := apierror.From(err)
		require.Equal(t, apierror.IDPerUserSeriesLimit, e.ID)
		require.Equal(t, ampText(capacity, capacity), e.Msg)
		require.Equal(t, ampText(capacity, capacity)+" (err-vigil-per-user-series-limit)", err.Error())
	}

	// With no history the floor holds.
	require.NoError(t, push(t, ing, "ws-1", newSeries("s", "a", 0, 20, step())...))
	refused(push(t, ing, "ws-1", newSeries("s", "a", 20, 21, step())...), 20)
	require.Equal(t, 1.0, testutil.ToFloat64(discarded))
	require.Equal(t, 20.0, testutil.ToFloat64(ing.metrics.seriesCapacity.WithLabelValues("ws-1")))

	// 20 series for 30 minutes: up to 40. A surge beyond is refused, while
	// the samples of existing series and the new series that fit are stored.
	pass(ing, clk, seriesBaselineWindow)
	require.Equal(t, 40.0, testutil.ToFloat64(ing.metrics.seriesCapacity.WithLabelValues("ws-1")))
	require.Equal(t, 20.0, testutil.ToFloat64(ing.metrics.seriesBaseline.WithLabelValues("ws-1")))
	existing := step()
	surge := append(newSeries("s", "a", 0, 1, existing), newSeries("s", "b", 0, 25, existing)...)
	refused(push(t, ing, "ws-1", surge...), 40)
	require.Equal(t, 6.0, testutil.ToFloat64(discarded), "five more")
	got := read(t, ing, "ws-1")
	require.Len(t, got, 40)
	require.Len(t, got[`{__name__="s", job="a0"}`], 2, "the existing series took its sample")

	// The baseline rises with the series held: up to 80, then up to the
	// quota and no further.
	pass(ing, clk, seriesBaselineWindow)
	refused(push(t, ing, "ws-1", newSeries("s", "c", 0, 45, step())...), 80)
	require.Len(t, read(t, ing, "ws-1"), 80)
	pass(ing, clk, seriesBaselineWindow)
	refused(push(t, ing, "ws-1", newSeries("s", "d", 0, 30, step())...), 100)
	require.Len(t, read(t, ing, "ws-1"), 100)
	require.Equal(t, 21.0, testutil.ToFloat64(discarded))
	pass(ing, clk, 2*seriesBaselineWindow)
	require.Equal(t, 100.0, testutil.ToFloat64(ing.metrics.seriesCapacity.WithLabelValues("ws-1")), "never above the quota")

	require.NoError(t, push(t, ing, "ws-2", newSeries("s", "a", 0, 20, step())...), "each workspace has its own capacity")
	limits.set(0, 0, 0)
	ing.refreshSeriesLimits()
	require.NoError(t, push(t, ing, "ws-1", newSeries("s", "e", 0, 10, step())...), "limits changed at runtime")
}

// TestPerMetricSeriesLimit: a metric name's series are limited, even those
// created before the limit was turned on.
func TestPerMetricSeriesLimit(t *testing.T) {
	clk := newFakeClock()
	limits := &fakeSeriesLimits{}
	ing := newLimitedIngester(t, testConfig(), t.TempDir(), limits, clk, nil)
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-1", newSeries("m", "x", 0, 3, now)...))

	limits.set(0, 0, 3)
	ing.refreshSeriesLimits()
	err := push(t, ing, "ws-1", append(newSeries("m", "x", 0, 1, now+1), newSeries("m", "x", 3, 4, now+1)...)...)
	require.Equal(t, http.StatusBadRequest, apierror.StatusOf(err))
	e := apierror.From(err)
	require.Equal(t, apierror.IDPerMetricSeriesLimit, e.ID)
	require.Equal(t, `per-metric series limit of 3 exceeded, please contact administrator to raise it. (local limit: 0 global limit: 3 actual local limit: 3) series: '{__name__="m", job="x3"}'`, e.Msg)
	require.Equal(t, 1.0, testutil.ToFloat64(ing.metrics.discardedSamples.WithLabelValues("ws-1", reasonPerMetricSeries)))
	got := read(t, ing, "ws-1")
	require.Len(t, got[`{__name__="m", job="x0"}`], 2, "the existing series took its sample")
	require.NotContains(t, got, `{__name__="m", job="x3"}`)
	require.NoError(t, push(t, ing, "ws-1", newSeries("other", "x", 0, 3, now)...), "other metric names have their own count")
}

// TestSeriesLimitErrorOutranksSampleErrors: a push refused both an old
// sample and a new series names the series limit, which the sender can act
// on.
func TestSeriesLimitErrorOutranksSampleErrors(t *testing.T) {
	clk := newFakeClock()
	limits := &fakeSeriesLimits{}
	limits.set(0, 0, 1)
	ing := newLimitedIngester(t, testConfig(), t.TempDir(), limits, clk, nil)
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-1", newSeries("m", "x", 0, 1, now)...))
	err := push(t, ing, "ws-1", append(newSeries("m", "x", 0, 1, now-1000), newSeries("m", "x", 1, 2, now)...)...)
	require.Equal(t, apierror.IDPerMetricSeriesLimit, apierror.From(err).ID, "%v", err)
	require.Equal(t, 1.0, testutil.ToFloat64(ing.metrics.discardedSamples.WithLabelValues("ws-1", reasonOutOfOrder)))
}

func TestMetricSeriesCounts(t *testing.T) {
	var m metricSeries
	m.add("up", 1)
	m.add("up", 1)
	m.add("down", 1)
	require.EqualValues(t, 2, m.count("up"))
	m.add("up", -2)
	require.EqualValues(t, 0, m.count("up"))
	_, kept := m.shards[shardOf("up")].n["up"]
	require.False(t, kept, "a name with no series is forgotten")
	require.EqualValues(t, 1, m.count("down"))
}

// TestMemoryGuard: near the memory limit new series get 503, existing ones
// keep taking samples.
func TestMemoryGuard(t *testing.T) {
	cfg := testConfig()
	cfg.MemoryLimit = 1000
	var heap atomic.Uint64
	ing := newLimitedIngester(t, cfg, t.TempDir(), nil, newFakeClock(), &heap)
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-1", newSeries("up", "a", 0, 1, now)...))

	heap.Store(800) // 0.8 of 1000, the default ratio
	ing.guard.sample()
	err := push(t, ing, "ws-1", append(newSeries("up", "a", 0, 1, now+1), newSeries("up", "b", 0, 1, now+1)...)...)
	require.Equal(t, http.StatusServiceUnavailable, apierror.StatusOf(err))
	require.Equal(t, apierror.IDIngesterMemoryLimit, apierror.From(err).ID)
	require.ErrorContains(t, err, "1 sample(s) of new series rejected because the ingester's live heap (800 bytes) reached 0.8 of its memory limit of 1000 bytes")
	got := read(t, ing, "ws-1")
	require.Len(t, got[`{__name__="up", job="a0"}`], 2, "the existing series took its sample")
	require.NotContains(t, got, `{__name__="up", job="b0"}`)

	heap.Store(799)
	ing.guard.sample()
	require.NoError(t, push(t, ing, "ws-1", newSeries("up", "b", 0, 1, now+2)...))
}

// TestSeriesLimitsSpareWALReplay: the series a WAL holds come back whatever
// the limits and the heap; only new series are refused.
func TestSeriesLimitsSpareWALReplay(t *testing.T) {
	dir, clk := t.TempDir(), newFakeClock()
	ing := newLimitedIngester(t, testConfig(), dir, nil, clk, nil)
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-1", newSeries("up", "a", 0, 30, now)...))
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))

	limits := &fakeSeriesLimits{}
	limits.set(10, 5, 2)
	cfg := testConfig()
	cfg.MemoryLimit = 1000
	var heap atomic.Uint64
	heap.Store(900)
	ing = newLimitedIngester(t, cfg, dir, limits, clk, &heap)
	ing.guard.sample()
	require.Len(t, read(t, ing, "ws-1"), 30, "replay is never refused")
	require.NoError(t, push(t, ing, "ws-1", newSeries("up", "a", 0, 30, now+1)...), "existing series take samples")
	require.Error(t, push(t, ing, "ws-1", newSeries("up", "b", 0, 1, now+1)...))

	heap.Store(0)
	ing.guard.sample()
	err := push(t, ing, "ws-1", newSeries("up", "b", 0, 1, now+1)...)
	require.Equal(t, apierror.IDPerUserSeriesLimit, apierror.From(err).ID)
	require.Contains(t, err.Error(), "actual local limit: 10)", "the baseline starts from the replayed series: capped by the quota")
}
