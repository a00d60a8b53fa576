package ingester

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/model/labels"
)

// SeriesLimits gives a workspace's series limits, global over the cluster;
// *limits.Overrides has them. Each ingester enforces its share (see
// SetRing). Implementations must be safe for concurrent use: the ingester
// reads them for every open workspace every 15 seconds, never on the write
// path.
type SeriesLimits interface {
	// MaxGlobalSeriesPerUser is the workspace's active-series quota; 0: no
	// limit.
	MaxGlobalSeriesPerUser(workspace string) int
	// SeriesCapacityMinimum is the floor of the workspace's adaptive
	// series capacity; 0: the capacity is the quota.
	SeriesCapacityMinimum(workspace string) int
	// MaxGlobalSeriesPerMetric is the most active series of one metric
	// name; 0: no limit.
	MaxGlobalSeriesPerMetric(workspace string) int
}

// IngesterRing is what an ingester reads of the ingester ring (a
// *ring.Ring reading the ring it is a member of) to turn a global limit
// into its share.
type IngesterRing interface {
	// GetAllHealthy returns the instances healthy for op; it must not
	// block on the ring's store.
	GetAllHealthy(op ring.Operation) (ring.ReplicationSet, error)
}

// SetSeriesLimits makes the ingester enforce the workspaces' series limits
// from src; call it before the ingester starts. Without it only the
// instance limits hold.
func (i *Ingester) SetSeriesLimits(src SeriesLimits) { i.seriesLimits = src }

// SetRing gives the ingester the ring it divides the workspaces' global
// limits by; call it before the ingester starts. Without it every ingester
// enforces the whole global limit, as a lone ingester does.
func (i *Ingester) SetRing(r IngesterRing) { i.ingesterRing = r }

const (
	// seriesRefresh is how often each workspace's series count is sampled
	// into its baseline and its limits are computed anew.
	seriesRefresh = 15 * time.Second
	// seriesBaselineWindow is what the baseline averages. AMP: capacity is
	// adjusted based on the last 30 min of usage.
	seriesBaselineWindow = 30 * time.Minute
)

// AMP's discard reasons for series refused by a workspace's limits.
const (
	reasonPerUserSeries   = "per_user_series_limit"
	reasonPerMetricSeries = "per_metric_series_limit"
)

// ringShare is how this ingester last saw the ingester ring: what a
// workspace's global limit is divided by.
type ringShare struct {
	rf        int
	zoneAware bool
	zones     int // zones with a healthy ingester
	inZone    int // healthy ingesters in this ingester's zone
	instances int // healthy ingesters
}

// fraction is the part of a workspace's series this ingester holds,
// num/den. With zone-aware replication a series has one replica in each
// of min(rf, zones) zones, so a zone holds min(rf, zones)/zones of the
// series, spread over its ingesters (1/ingesters in the zone with RF 3 in
// three zones); otherwise each series is on rf of the ingesters. Counts
// not seen yet count as one ingester, so that an ingester that does not
// know the ring holds the whole limit.
func (s ringShare) fraction() (num, den int64) {
	rf := max(s.rf, 1)
	if s.zoneAware && s.zones > 0 {
		return int64(min(rf, s.zones)), int64(s.zones) * int64(max(s.inZone, 1))
	}
	return int64(rf), int64(max(s.instances, 1))
}

// local is this ingester's share of a global limit: rounded up, in the
// workspace's favour, so that a small limit never becomes 0 (no limit),
// and never more than the global limit (fewer ingesters than replicas).
// 0 stays 0, no limit.
func (s ringShare) local(global int) int64 {
	if global <= 0 {
		return 0
	}
	num, den := s.fraction()
	return min((int64(global)*num+den-1)/den, int64(global))
}

// global estimates the workspace's global count from this ingester's.
func (s ringShare) global(local int64) int64 {
	num, den := s.fraction()
	return local * den / num
}

// refreshRingShare counts the healthy ingesters. A ring that cannot be
// read leaves the last count in force.
func (i *Ingester) refreshRingShare() {
	s := ringShare{rf: i.cfg.Ring.ReplicationFactor, zoneAware: i.cfg.Ring.ZoneAwarenessEnabled}
	if i.ingesterRing != nil {
		rs, err := i.ingesterRing.GetAllHealthy(ring.Write)
		if err != nil {
			return
		}
		zone := i.lifecycler.GetInstanceZone()
		zones := map[string]struct{}{}
		for _, in := range rs.Instances {
			zones[in.Zone] = struct{}{}
			if in.Zone == zone {
				s.inZone++
			}
		}
		s.instances, s.zones = len(rs.Instances), len(zones)
	}
	i.share.Store(&s)
}

// seriesLimiter enforces one workspace's series limits from its TSDB's
// series callbacks. The write path reads one atomic state; every
// seriesRefresh the workspace's series count is sampled into the baseline
// and the state computed anew.
type seriesLimiter struct {
	guard *memGuard // nil: none
	state atomic.Pointer[seriesLimitState]

	mu       sync.Mutex
	baseline []seriesSample // of the last seriesBaselineWindow, oldest first
}

type seriesSample struct {
	at time.Time
	n  int64
}

// seriesLimitState is a workspace's limits on this ingester; nil: none.
type seriesLimitState struct {
	capacity  int64 // the workspace's series on this ingester; 0: no limit
	perMetric int64 // series of one metric name on this ingester; 0: no limit
	userErr   *perUserLimitError
	metricErr *perMetricLimitError
}

// check refuses a new series when the ingester's memory is nearly full or
// the workspace's series are at a limit.
func (l *seriesLimiter) check(c *seriesCounter, lset labels.Labels) error {
	if l.guard.full() {
		return errMemoryGuard
	}
	st := l.state.Load()
	if st == nil {
		return nil
	}
	if st.capacity > 0 && c.own.Load() >= st.capacity {
		return st.userErr
	}
	if st.perMetric > 0 && c.perMetric.count(lset.Get(labels.MetricName)) >= st.perMetric {
		return st.metricErr
	}
	return nil
}

// sample records n series at now and returns the average of the window,
// the workspace's baseline. With little history the capacity's floor
// protects the workspace.
func (l *seriesLimiter) sample(now time.Time, n int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := now.Add(-seriesBaselineWindow)
	old := 0
	for old < len(l.baseline) && !l.baseline[old].at.After(cutoff) {
		old++
	}
	l.baseline = append(l.baseline[:copy(l.baseline, l.baseline[old:])], seriesSample{at: now, n: n})
	var sum int64
	for _, s := range l.baseline {
		sum += s.n
	}
	return sum / int64(len(l.baseline))
}

// newSeriesLimitState computes a workspace's limits on this ingester. AMP:
// capacity = min(quota, max(floor, 2 x the average of the last 30
// minutes)); the quota and the floor are global, converted to this
// ingester's share, and the baseline is this ingester's own.
func newSeriesLimitState(quota, floor, perMetric int, baseline int64, s ringShare) *seriesLimitState {
	if quota <= 0 && perMetric <= 0 {
		return nil
	}
	st := &seriesLimitState{}
	if quota > 0 {
		localQuota := s.local(quota)
		e := &perUserLimitError{quota: int64(quota), capacity: int64(quota), local: localQuota}
		if floor > 0 && floor < quota {
			e.floor = int64(floor)
			e.local = min(localQuota, max(s.local(floor), 2*baseline))
			e.capacity = min(int64(quota), max(int64(floor), s.global(2*baseline)))
		}
		e.msg = e.format()
		st.capacity, st.userErr = e.local, e
	}
	if perMetric > 0 {
		st.perMetric = s.local(perMetric)
		st.metricErr = &perMetricLimitError{global: int64(perMetric), local: st.perMetric}
	}
	return st
}

// attachSeriesLimits gives a workspace's freshly opened TSDB its series
// limiter, its baseline starting from the series the WAL replay restored.
func (i *Ingester) attachSeriesLimits(id string, u *userDB) {
	if u.series.limiter.Load() != nil {
		return
	}
	l := &seriesLimiter{guard: i.guard}
	i.refreshWorkspace(id, u, l)
	u.series.limiter.CompareAndSwap(nil, l)
}

// refreshSeriesLimits counts the ring, then samples every open workspace's
// series into its baseline and computes its limits anew.
func (i *Ingester) refreshSeriesLimits() {
	i.refreshRingShare()
	for id, u := range i.openDBs() {
		if !u.tryHoldIdle() {
			continue // closed: its metrics are gone, keep them so
		}
		if l := u.series.limiter.Load(); l != nil {
			i.refreshWorkspace(id, u, l)
		} else {
			i.attachSeriesLimits(id, u)
		}
		u.release()
	}
}

func (i *Ingester) refreshWorkspace(id string, u *userDB, l *seriesLimiter) {
	baseline := l.sample(i.now(), u.series.own.Load())
	var quota, floor, perMetric int
	if i.seriesLimits != nil {
		quota = i.seriesLimits.MaxGlobalSeriesPerUser(id)
		floor = i.seriesLimits.SeriesCapacityMinimum(id)
		perMetric = i.seriesLimits.MaxGlobalSeriesPerMetric(id)
	}
	st := newSeriesLimitState(quota, floor, perMetric, baseline, *i.share.Load())
	l.state.Store(st)
	i.metrics.seriesBaseline.WithLabelValues(id).Set(float64(baseline))
	if st != nil && st.capacity > 0 {
		i.metrics.seriesCapacity.WithLabelValues(id).Set(float64(st.capacity))
	} else {
		i.metrics.seriesCapacity.DeleteLabelValues(id)
	}
}

// limitsLoop samples the heap for the memory guard every second and the
// workspaces' series every seriesRefresh, apart from the ingester's main
// loop, which may upload blocks for minutes.
func (i *Ingester) limitsLoop(ctx context.Context) error {
	var heap <-chan time.Time
	if i.guard != nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		heap = t.C
	}
	series := time.NewTicker(i.limitsRefresh)
	defer series.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-heap:
			i.guard.sample()
		case <-series.C:
			i.refreshSeriesLimits()
		}
	}
}

// limitsStart takes the first readings before the ingester turns ACTIVE.
func (i *Ingester) limitsStart(context.Context) error {
	if i.guard != nil {
		i.guard.sample()
	}
	i.refreshSeriesLimits()
	return nil
}

// perUserLimitError refuses a new series of a workspace at its capacity,
// in AMP's words.
type perUserLimitError struct {
	capacity, floor, quota int64 // global; floor 0: the capacity does not adapt
	local                  int64 // the capacity on this ingester
	msg                    string
}

func (e *perUserLimitError) format() string {
	if e.floor == 0 {
		return fmt.Sprintf("per-user series limit of %d exceeded, please contact administrator to raise it. (local limit: 0 global limit: %d actual local limit: %d)",
			e.capacity, e.quota, e.local)
	}
	return fmt.Sprintf("per-user series limit of %d exceeded, Capacity from %s to %s is automatically adjusted based on the last 30 min of usage. "+
		"If throttled above %s or in case of incoming surges, please contact administrator to raise it. (local limit: 0 global limit: %d actual local limit: %d)",
		e.capacity, thousands(e.floor), thousands(e.quota), thousands(e.quota), e.quota, e.local)
}

func (e *perUserLimitError) Error() string { return e.msg }

// perMetricLimitError refuses a new series of a metric name at its limit;
// the rejection adds the series.
type perMetricLimitError struct {
	global, local int64
}

func (e *perMetricLimitError) Error() string {
	return fmt.Sprintf("per-metric series limit of %d exceeded, please contact administrator to raise it. (local limit: 0 global limit: %d actual local limit: %d)",
		e.global, e.global, e.local)
}

// thousands formats n with comma thousands separators, as AMP writes its
// quotas (2,000,000).
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	start := 0
	if n < 0 {
		start = 1
	}
	for i := len(s) - 3; i > start; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
