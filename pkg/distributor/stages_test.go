package distributor

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
	"github.com/vigil-metrics/vigil/pkg/push"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// recordingIngester keeps every series it is sent, by its labels.
type recordingIngester struct {
	mu      sync.Mutex
	samples map[string][]prompb.Sample
}

func (r *recordingIngester) Push(_ context.Context, req *prompb.WriteRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.samples == nil {
		r.samples = map[string][]prompb.Sample{}
	}
	for _, ts := range req.Timeseries {
		var parts []string
		for _, l := range ts.Labels {
			parts = append(parts, l.Name+"="+l.Value)
		}
		k := strings.Join(parts, ",")
		r.samples[k] = append(r.samples[k], ts.Samples...)
	}
	return nil
}

func (r *recordingIngester) series() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k := range r.samples {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// stageDistributor is a distributor of one ingester with limits l, a
// registry of its own and a clock the test sets.
func stageDistributor(t *testing.T, l staticLimits, replicas Replicas, members Members, ing Pusher) (*Distributor, *prometheus.Registry, *time.Time) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var cfg Config
	cfg.MaxRequestSizeBytes, cfg.MaxDecompressedSizeBytes, cfg.RemoteTimeout = 1<<20, 16<<20, 5*time.Second
	r := &fakeRing{instances: []ring.InstanceDesc{{Addr: "a", Id: "a", State: ring.ACTIVE}}}
	d, err := New(cfg, r, func(ring.InstanceDesc) (Pusher, error) { return ing, nil }, l, replicas, members, reg, log.NewNopLogger())
	require.NoError(t, err)
	now := time.Unix(1_800_000_000, 0)
	d.now = func() time.Time { return now }
	return d, reg, &now
}

func discarded(t *testing.T, reg *prometheus.Registry, metric, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestDiscardReasons: one case per reason the distributor discards for,
// with AMP's reason, the status and message the sender gets, and the
// counter. Every case also carries a valid series, which is stored.
func TestDiscardReasons(t *testing.T) {
	lim := staticLimits{maxLabels: 5, maxSize: 100, maxName: 20, maxValue: 30, grace: 10 * time.Minute, pastGrace: time.Hour,
		maxMetadataLength: 50, maxMetadataPerMetric: 2, rate: 1000, burst: 1000}
	now := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) []prompb.Sample {
		return []prompb.Sample{{Timestamp: now.Add(d).UnixMilli(), Value: 1}}
	}
	series := func(s []prompb.Sample, kv ...string) prompb.TimeSeries {
		return prompb.TimeSeries{Labels: lbls(kv...), Samples: s}
	}
	valid := series(at(0), "__name__", "ok")
	md := func(name, help string) prompb.MetricMetadata {
		return prompb.MetricMetadata{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: name, Help: help}
	}
	for _, tc := range []struct {
		reason   string
		series   []prompb.TimeSeries
		metadata []prompb.MetricMetadata
		status   int
		message  string
		metric   string // the counter: samples unless metadata
		count    float64
	}{
		{reason: "missing_metric_name", series: []prompb.TimeSeries{series(at(0), "job", "x")}, status: 400,
			message: `received a series without a metric name, series: '{job="x"}' (this request: 1 series, 1 samples and 0 metadata discarded, the rest stored) (err-vigil-missing-metric-name)`},
		{reason: "metric_name_invalid", series: []prompb.TimeSeries{series(at(0), "__name__", "1bad")}, status: 400,
			message: `received a series with an invalid metric name: '1bad' (this request: 1 series, 1 samples and 0 metadata discarded, the rest stored) (err-vigil-metric-name-invalid)`},
		{reason: "label_invalid", series: []prompb.TimeSeries{series(at(0), "__name__", "m", "a-b", "1")}, status: 400,
			message: `received a series with an invalid label name: 'a-b' series: '{__name__="m", "a-b"="1"}' (this request: 1 series, 1 samples and 0 metadata discarded, the rest stored) (err-vigil-label-invalid)`},
		{reason: "duplicate_label_names", series: []prompb.TimeSeries{series(at(0), "__name__", "m", "a", "1", "a", "2")}, status: 400,
			message: `received a series with duplicate label name, label: 'a' series: '{__name__="m", a="1", a="2"}' (this request: 1 series, 1 samples and 0 metadata discarded, the rest stored) (err-vigil-duplicate-label-names)`},
		{reason: "label_value_too_long", series: []prompb.TimeSeries{series(at(0), "__name__", "m", "a", strings.Repeat("v", 31))}, status: 400,
			message: `received a series whose label value length exceeds the limit (actual: 31, limit: 30), label: 'a' series: '{__name__="m", a="vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"}' (this request: 1 series, 1 samples and 0 metadata discarded, the rest stored) (err-vigil-label-value-too-long)`},
		{reason: "max_label_names_per_series", series: []prompb.TimeSeries{series(at(0), "__name__", "m", "a", "1", "b", "1", "c", "1", "d", "1", "e", "1")}, status: 400,
			message: `series has too many labels (actual: 6, limit: 5) series: '{__name__="m", a="1", b="1", c="1", d="1", e="1"}' (this request: 1 series, 1 samples and 0 metadata discarded, the rest stored) (err-vigil-max-label-names-per-series)`},
		{reason: "labels_size_too_large", series: []prompb.TimeSeries{series(at(0), "__name__", "m", "aaaaaaaaaaaaaaaaaaaa", strings.Repeat("v", 30), "bbbbbbbbbbbbbbbbbbbb", strings.Repeat("v", 30))}, status: 400,
			message: `received a series whose labels are too large (actual: 109 bytes, limit: 100 bytes) series: '{__name__="m", aaaaaaaaaaaaaaaaaaaa="vvvvvvvvvvvvvvvvvvvvvvvvvvvvvv", bbbbbbbbbbbbbbbbbbbb="vvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"}' (this request: 1 series, 1 samples and 0 metadata discarded, the rest stored) (err-vigil-labels-size-too-large)`},
		{reason: "greater_than_max_sample_age", series: []prompb.TimeSeries{series(append(at(-61*time.Minute), at(0)...), "__name__", "m")}, status: 400,
			message: `received a sample whose timestamp is too old (more than 1h0m0s before now, -validation.past-grace-period), timestamp: 2027-01-15T06:59:00Z series: '{__name__="m"}' (this request: 0 series, 1 samples and 0 metadata discarded, the rest stored) (err-vigil-sample-too-old)`},
		{reason: "too_far_in_future", series: []prompb.TimeSeries{series(at(11*time.Minute), "__name__", "m")}, status: 400,
			message: `received a sample whose timestamp is too far in the future (more than 10m0s ahead, -validation.creation-grace-period), timestamp: 2027-01-15T08:11:00Z series: '{__name__="m"}' (this request: 1 series, 1 samples and 0 metadata discarded, the rest stored) (err-vigil-too-far-in-future)`},
		{reason: "missing_metric_name", metadata: []prompb.MetricMetadata{md("", "help")}, status: 400, metric: "vigil_distributor_discarded_metadata_total",
			message: `received metadata without a metric name, type: COUNTER, help: 'help' (this request: 0 series, 0 samples and 1 metadata discarded, the rest stored) (err-vigil-missing-metric-name)`},
		{reason: "metadata_too_long", metadata: []prompb.MetricMetadata{md("m", strings.Repeat("h", 51))}, status: 400, metric: "vigil_distributor_discarded_metadata_total",
			message: `received metadata whose metric name, help or unit is longer than the limit (actual: 51, limit: 50, -validation.max-metadata-length) metric: 'm' (this request: 0 series, 0 samples and 1 metadata discarded, the rest stored) (err-vigil-metadata-too-long)`},
		{reason: "too_many_metadata_per_metric", metadata: []prompb.MetricMetadata{md("m", "a"), md("m", "b"), md("m", "c"), md("n", "d")}, status: 400, metric: "vigil_distributor_discarded_metadata_total",
			message: `received more metadata for one metric than the limit (limit: 2, -validation.max-metadata-per-metric) metric: 'm' (this request: 0 series, 0 samples and 1 metadata discarded, the rest stored) (err-vigil-too-many-metadata-per-metric)`},
		{reason: "rate_limited", series: []prompb.TimeSeries{series(make([]prompb.Sample, 1000), "__name__", "m")}, status: 429, count: 1001,
			message: `ingestion rate limit (1000) exceeded while adding 1001 samples and 0 metadata (err-vigil-ingestion-rate-limited)`},
	} {
		t.Run(tc.reason+"/"+tc.metric, func(t *testing.T) {
			ing := &recordingIngester{}
			d, reg, _ := stageDistributor(t, lim, nil, nil, ing)
			req := &prompb.WriteRequest{Timeseries: append([]prompb.TimeSeries{valid}, tc.series...), Metadata: tc.metadata}
			err := d.Push(tenant.WithID(context.Background(), "ws-1"), wrap(t, req, nil))
			require.Equal(t, tc.status, apierror.StatusOf(err), "%v", err)
			require.Equal(t, tc.message, err.Error())
			metric, count := tc.metric, tc.count
			if metric == "" {
				metric = "vigil_distributor_discarded_samples_total"
			}
			if count == 0 {
				count = 1
			}
			require.Equal(t, count, discarded(t, reg, metric, tc.reason))
			if tc.status == http.StatusTooManyRequests {
				require.Empty(t, ing.series(), "a rate-limited request is refused whole")
				return
			}
			require.Contains(t, ing.series(), "__name__=ok", "the valid series is stored")
		})
	}
}

// TestIngestionRateTokenBucket: with AMP's quotas (170,000 samples/s, a
// burst of 1,000,000) a burst of 1,000,000 samples passes, the next
// request is refused whole, and a second later 170,000 samples pass (and no
// more). Two distributors share the workspace's limit: each allows half.
func TestIngestionRateTokenBucket(t *testing.T) {
	lim := staticLimits{maxLabels: 70, maxSize: 7 << 10, maxName: 1024, maxValue: 2048, grace: 10 * time.Minute, rate: 170_000, burst: 1_000_000}
	ctx := tenant.WithID(context.Background(), "ws-1")
	samples := func(n int) *prompb.WriteRequest {
		req := &prompb.WriteRequest{}
		for len(req.Timeseries)*1000 < n {
			ts := prompb.TimeSeries{Labels: lbls("__name__", "m", "i", fmt.Sprint(len(req.Timeseries)))}
			for j := 0; j < min(1000, n-len(req.Timeseries)*1000); j++ {
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: int64(j), Value: 1})
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		return req
	}
	ing := &recordingIngester{}
	d, reg, now := stageDistributor(t, lim, nil, nil, ing)
	require.NoError(t, d.Push(ctx, wrap(t, samples(1_000_000), nil)), "the burst passes")
	err := d.Push(ctx, wrap(t, samples(1), nil))
	require.Equal(t, http.StatusTooManyRequests, apierror.StatusOf(err))
	require.EqualError(t, err, "ingestion rate limit (170000) exceeded while adding 1 samples and 0 metadata (err-vigil-ingestion-rate-limited)")
	*now = now.Add(time.Second)
	err = d.Push(ctx, wrap(t, samples(170_001), nil))
	require.Equal(t, http.StatusTooManyRequests, apierror.StatusOf(err), "refused whole: one more than a second's worth")
	require.NoError(t, d.Push(ctx, wrap(t, samples(170_000), nil)), "a second later, 170,000 samples pass")
	require.Equal(t, 170_002.0, discarded(t, reg, "vigil_distributor_discarded_samples_total", "rate_limited"))

	// Two distributors: each enforces half of the rate and of the burst.
	var two []*Distributor
	for range 2 {
		d, _, _ := stageDistributor(t, lim, nil, fixedMembers(2), &recordingIngester{})
		two = append(two, d)
	}
	for _, d := range two {
		require.NoError(t, d.Push(ctx, wrap(t, samples(500_000), nil)))
		err := d.Push(ctx, wrap(t, samples(1), nil))
		require.EqualError(t, err, "ingestion rate limit (85000) exceeded while adding 1 samples and 0 metadata (err-vigil-ingestion-rate-limited)")
	}
}

type fixedMembers int

func (m fixedMembers) HealthyDistributors() int { return int(m) }

// TestHADeduplication: replicas A and B of one cluster push through two
// distributors sharing one election; only A's samples are stored, without
// __replica__ and with cluster; A is silent for 30 s, B is elected and its
// samples stored, and both distributors agree; B's non-elected pushes were
// acknowledged (nil) and counted.
func TestHADeduplication(t *testing.T) {
	lim := staticLimits{maxLabels: 70, maxSize: 7 << 10, maxName: 1024, maxValue: 2048, grace: 10 * time.Minute, ha: true}
	store := newHAStore(t)
	ing := &recordingIngester{}
	var (
		dists  []*Distributor
		clocks []*time.Time
		regs   []*prometheus.Registry
	)
	for range 2 {
		reg := prometheus.NewRegistry()
		tr := newTestHATracker(t, store, haTestLimits{maxClusters: 500}, reg)
		d, _, now := stageDistributor(t, lim, tr, nil, ing)
		dists, clocks, regs = append(dists, d), append(clocks, now), append(regs, reg)
	}
	ctx := tenant.WithID(context.Background(), "ws-1")
	start := *clocks[0]
	pushAt := func(dist int, replica string, after time.Duration) error {
		for _, c := range clocks {
			*c = start.Add(after)
		}
		ts := start.Add(after).UnixMilli()
		return dists[dist].Push(ctx, wrap(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: lbls("__name__", "up", "__replica__", replica, "cluster", "prod", "job", "api"), Samples: []prompb.Sample{{Timestamp: ts, Value: 1}}},
			{Labels: lbls("__name__", "requests_total", "__replica__", replica, "cluster", "prod"), Samples: []prompb.Sample{{Timestamp: ts, Value: 2}}},
		}}, nil))
	}
	require.NoError(t, pushAt(0, "a", 0))
	require.NoError(t, pushAt(1, "b", time.Second), "not elected: acknowledged")
	require.NoError(t, pushAt(1, "a", 15*time.Second))
	require.NoError(t, pushAt(0, "b", 16*time.Second))
	require.Equal(t, []string{"__name__=requests_total,cluster=prod", "__name__=up,cluster=prod,job=api"}, ing.series(), "no series carries __replica__")
	require.Len(t, ing.samples["__name__=up,cluster=prod,job=api"], 2, "A's samples only")

	// A is silent for 30 s: B's next push, through either distributor, elects B.
	require.NoError(t, pushAt(1, "b", 46*time.Second))
	require.NoError(t, pushAt(0, "b", 47*time.Second))
	require.NoError(t, pushAt(0, "a", 48*time.Second), "A is no longer elected")
	got := ing.samples["__name__=up,cluster=prod,job=api"]
	require.Len(t, got, 4)
	require.Equal(t, start.Add(46*time.Second).UnixMilli(), got[2].Timestamp, "B's samples from its election on")
	deduped := testutil.ToFloat64(dists[0].replicas.(*HATracker).metrics.deduplicated.WithLabelValues("ws-1", "prod")) +
		testutil.ToFloat64(dists[1].replicas.(*HATracker).metrics.deduplicated.WithLabelValues("ws-1", "prod"))
	require.Equal(t, 6.0, deduped, "three non-elected pushes of two samples")
}

// TestHADeduplicationReplicated: with replicas on three ingesters, the
// series go out as their own bytes with the replica label cut out: every
// ingester gets them without __replica__, whatever the tenant put in the
// bytes (a field 1 that is not a label ahead of the labels, the label
// twice). Before the fix, a stray field 1 made the cut remove __name__ and
// keep __replica__.
func TestHADeduplicationReplicated(t *testing.T) {
	lim := staticLimits{maxLabels: 70, maxSize: 7 << 10, maxName: 1024, maxValue: 2048, grace: 10 * time.Minute, ha: true}
	ings := []*encodingIngester{{}, {}, {}}
	d := newTestDistributorWith(t, ings[0], ings[1], ings[2])
	d.limits = lim
	d.replicas = newTestHATracker(t, newHAStore(t), haTestLimits{maxClusters: 500}, prometheus.NewRegistry())
	now := time.Now()
	d.now = func() time.Time { return now }
	series := func(extra []byte, kv ...string) []byte {
		ts := prompb.TimeSeries{Labels: lbls(kv...), Samples: []prompb.Sample{{Timestamp: now.UnixMilli(), Value: 1}}}
		b, err := ts.Marshal()
		require.NoError(t, err)
		b = append(extra, b...)
		return append(binary.AppendUvarint([]byte{0x0a}, uint64(len(b))), b...)
	}
	var body []byte
	body = append(body, series(nil, "__name__", "a", "__replica__", "r1", "cluster", "prod")...)
	body = append(body, series([]byte{0x08, 0x00}, "__name__", "b", "__replica__", "r1", "cluster", "prod")...)
	body = append(body, series(nil, "__name__", "c", "__replica__", "r1", "__replica__", "r2", "cluster", "prod")...)
	var (
		dec prompb.WriteRequest
		raw [][]byte
	)
	require.NoError(t, remotewrite.DecodeWithRaw(body, &dec, &raw, nil))
	released := make(chan struct{})
	require.NoError(t, d.Push(tenantCtx(), push.NewRequest(dec, raw, nil, func() { close(released) })))
	<-released
	want := []string{`{__name__="a", cluster="prod"}`, `{__name__="b", cluster="prod"}`, `{__name__="c", cluster="prod"}`}
	for i, ing := range ings {
		var got []string
		for _, ts := range ing.got {
			got = append(got, seriesString(ts.Labels))
		}
		sort.Strings(got)
		require.Equal(t, want, got, "ingester %d", i)
	}
}

// countingReplicas elects every replica and counts the checks.
type countingReplicas struct{ checks int }

func (c *countingReplicas) CheckReplica(context.Context, string, string, string, time.Time) error {
	c.checks++
	return nil
}
func (c *countingReplicas) CountDeduplicated(string, string, int) {}

// TestHANamesAreValidatedFirst: a cluster or replica name longer than a
// label value may be never reaches the election (which gossips it to every
// member): the request is not deduplicated and validation refuses the
// series. Before the fix a 4 MB name was written to the KV store before the
// request was refused.
func TestHANamesAreValidatedFirst(t *testing.T) {
	lim := staticLimits{maxLabels: 70, maxSize: 7 << 10, maxName: 1024, maxValue: 2048, grace: 10 * time.Minute, ha: true}
	for _, kv := range [][]string{
		{"__name__", "up", "__replica__", "a", "cluster", strings.Repeat("c", 2049)},
		{"__name__", "up", "__replica__", strings.Repeat("r", 2049), "cluster", "prod"},
		{"__name__", "up", "__replica__", "a", "cluster", "\xff"},
	} {
		reps := &countingReplicas{}
		d, reg, now := stageDistributor(t, lim, reps, nil, &recordingIngester{})
		err := d.Push(tenant.WithID(context.Background(), "ws-1"), wrap(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: lbls(kv...), Samples: []prompb.Sample{{Timestamp: now.UnixMilli(), Value: 1}}},
		}}, nil))
		require.Equal(t, http.StatusBadRequest, apierror.StatusOf(err), "%v", err)
		require.Zero(t, reps.checks, "the election never saw the name")
		require.NotZero(t, discarded(t, reg, "vigil_distributor_discarded_samples_total", "label_value_too_long")+
			discarded(t, reg, "vigil_distributor_discarded_samples_total", "label_invalid"))
	}
}
