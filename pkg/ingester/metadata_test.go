package ingester

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

func md(name string, typ prompb.MetricMetadata_MetricType, help string) prompb.MetricMetadata {
	return prompb.MetricMetadata{MetricFamilyName: name, Type: typ, Help: help}
}

func TestMetadataStore(t *testing.T) {
	const (
		counter = prompb.MetricMetadata_COUNTER
		gauge   = prompb.MetricMetadata_GAUGE
	)
	pushed := []prompb.MetricMetadata{
		md("b_total", counter, "B."),
		md("a", gauge, "A."),
		md("a", gauge, "A."), // the same again
		md("a", counter, "A, once a counter."),
		md("c", gauge, "C."),
	}
	for _, tc := range []struct {
		name                    string
		maxMetrics, maxPerMetic int
		limit, limitPerMetric   int
		metric                  string
		want                    []prompb.MetricMetadata
		perUser, perMetric      int
	}{
		{name: "all, sorted", limit: -1,
			want: []prompb.MetricMetadata{md("a", counter, "A, once a counter."), md("a", gauge, "A."), md("b_total", counter, "B."), md("c", gauge, "C.")}},
		{name: "limit", limit: 2,
			want: []prompb.MetricMetadata{md("a", counter, "A, once a counter."), md("a", gauge, "A."), md("b_total", counter, "B.")}},
		{name: "limit 0 answers nothing, as Prometheus", limit: 0},
		{name: "limit per metric", limit: -1, limitPerMetric: 1,
			want: []prompb.MetricMetadata{md("a", counter, "A, once a counter."), md("b_total", counter, "B."), md("c", gauge, "C.")}},
		{name: "one metric", limit: -1, metric: "c", want: []prompb.MetricMetadata{md("c", gauge, "C.")}},
		{name: "unknown metric", limit: -1, metric: "d"},
		{name: "metrics over the limit dropped", maxMetrics: 2, limit: -1, perUser: 1,
			want: []prompb.MetricMetadata{md("a", counter, "A, once a counter."), md("a", gauge, "A."), md("b_total", counter, "B.")}},
		{name: "entries over the per-metric limit dropped", maxPerMetic: 1, limit: -1, perMetric: 1,
			want: []prompb.MetricMetadata{md("a", gauge, "A."), md("b_total", counter, "B."), md("c", gauge, "C.")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newMetadataStore()
			perUser, perMetric := s.add("ws-1", pushed, 1000, tc.maxMetrics, tc.maxPerMetic)
			require.Equal(t, tc.perUser, perUser)
			require.Equal(t, tc.perMetric, perMetric)
			require.Equal(t, tc.want, s.list("ws-1", tc.limit, tc.limitPerMetric, tc.metric))
			require.Empty(t, s.list("ws-2", -1, 0, ""))
		})
	}
}

// TestMetadataStoreExpires: an entry not pushed again within the retain
// period goes; one pushed again stays; a workspace left without any goes.
func TestMetadataStoreExpires(t *testing.T) {
	s := newMetadataStore()
	s.add("ws-1", []prompb.MetricMetadata{md("a", prompb.MetricMetadata_GAUGE, "A."), md("b", prompb.MetricMetadata_GAUGE, "B.")}, 1000, 0, 0)
	s.add("ws-2", []prompb.MetricMetadata{md("c", prompb.MetricMetadata_GAUGE, "C.")}, 1000, 0, 0)
	s.add("ws-1", []prompb.MetricMetadata{md("b", prompb.MetricMetadata_GAUGE, "B.")}, 5000, 0, 0)
	require.Equal(t, []string{"ws-2"}, s.purge(2000))
	require.Equal(t, []prompb.MetricMetadata{md("b", prompb.MetricMetadata_GAUGE, "B.")}, s.list("ws-1", -1, 0, ""))
	require.Empty(t, s.list("ws-2", -1, 0, ""))
	// A push after the purge is kept.
	s.add("ws-2", []prompb.MetricMetadata{md("c", prompb.MetricMetadata_GAUGE, "C.")}, 6000, 0, 0)
	require.Len(t, s.list("ws-2", -1, 0, ""), 1)
}

type metadataLimitsOf struct{ metrics, perMetric, exemplars int }

func (l metadataLimitsOf) MaxGlobalMetadataPerUser(string) int   { return l.metrics }
func (l metadataLimitsOf) MaxGlobalMetadataPerMetric(string) int { return l.perMetric }
func (l metadataLimitsOf) MaxGlobalExemplarsPerUser(string) int  { return l.exemplars }

func startIngesterWithMetadataLimits(t *testing.T, lim MetadataLimits) (*Ingester, string) {
	t.Helper()
	dir := t.TempDir()
	ing, err := New(testConfig(), dir, 9095, testBucket(t, dir), ringmember.Store{Client: newKV(t)}, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	ing.SetMetadataLimits(lim)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), ing) })
	return ing, dir
}

// TestPushKeepsMetadataAndExemplars: a metadata-only push, as Prometheus
// sends them, is kept without opening a TSDB; exemplars of pushed series
// are queryable, within their range and matchers.
func TestPushKeepsMetadataAndExemplars(t *testing.T) {
	ing, dir := startIngesterWithMetadataLimits(t, metadataLimitsOf{metrics: 10, perMetric: 10, exemplars: 100})
	ctx := tenant.WithID(context.Background(), "ws-1")
	require.NoError(t, ing.Push(ctx, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		md("http_requests_total", prompb.MetricMetadata_COUNTER, "Requests."),
	}}))
	_, err := os.Stat(filepath.Join(dir, "ingester", "tsdb", "ws-1"))
	require.True(t, os.IsNotExist(err), "a metadata-only push opens no TSDB")
	resp, err := ing.MetricsMetadata(ctx, &ingesterpb.MetricsMetadataRequest{Limit: -1})
	require.NoError(t, err)
	require.Equal(t, []prompb.MetricMetadata{md("http_requests_total", prompb.MetricMetadata_COUNTER, "Requests.")}, resp.Metadata)

	now := time.Now().UnixMilli()
	series := ts("http_requests_total", "api", prompb.Sample{Timestamp: now - 1000, Value: 1}, prompb.Sample{Timestamp: now, Value: 2})
	series.Exemplars = []prompb.Exemplar{
		{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: now - 1000},
		{Labels: []prompb.Label{{Name: "trace_id", Value: "def"}}, Value: 2, Timestamp: now},
	}
	other := ts("other", "api", prompb.Sample{Timestamp: now, Value: 1})
	other.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "ghi"}}, Value: 1, Timestamp: now}}
	require.NoError(t, push(t, ing, "ws-1", series, other))

	matchers := []ingesterpb.ExemplarMatchers{{Matchers: []prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "http_requests_total"}}}}
	got, err := ing.QueryExemplars(ctx, &ingesterpb.ExemplarQueryRequest{StartTimestampMs: now - 500, EndTimestampMs: now, Matchers: matchers})
	require.NoError(t, err)
	require.Len(t, got.Timeseries, 1)
	require.Equal(t, "api", labelsOf(got.Timeseries[0]).Get("job"))
	require.Equal(t, []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "def"}}, Value: 2, Timestamp: now}}, got.Timeseries[0].Exemplars)

	none, err := ing.QueryExemplars(tenant.WithID(context.Background(), "ws-2"), &ingesterpb.ExemplarQueryRequest{StartTimestampMs: 0, EndTimestampMs: now, Matchers: matchers})
	require.NoError(t, err)
	require.Empty(t, none.Timeseries)
}

// TestExemplarsOffDropsThem: with no exemplar storage (limit 0) the
// samples are stored and the exemplars dropped, without an error.
func TestExemplarsOffDropsThem(t *testing.T) {
	ing, _ := startIngesterWithMetadataLimits(t, metadataLimitsOf{})
	now := time.Now().UnixMilli()
	series := ts("up", "api", prompb.Sample{Timestamp: now, Value: 1})
	series.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: now}}
	require.NoError(t, push(t, ing, "ws-1", series))
	got, err := ing.QueryExemplars(tenant.WithID(context.Background(), "ws-1"), &ingesterpb.ExemplarQueryRequest{
		StartTimestampMs: 0, EndTimestampMs: now,
		Matchers: []ingesterpb.ExemplarMatchers{{Matchers: []prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}}}},
	})
	require.NoError(t, err)
	require.Empty(t, got.Timeseries)
}

func labelsOf(ts prompb.TimeSeries) labels.Labels {
	var b labels.ScratchBuilder
	return ts.ToLabels(&b, nil)
}

// TestExemplarStorageOnFirstExemplar: a workspace's exemplar storage (a
// ring buffer allocated whole) is sized only once the workspace sends
// exemplars, and a marker keeps it sized across a reopen; a workspace
// that never sends any has none.
func TestExemplarStorageOnFirstExemplar(t *testing.T) {
	ing, dir := startIngesterWithMetadataLimits(t, metadataLimitsOf{metrics: 10, perMetric: 10, exemplars: 100})
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-1", ts("up", "api", prompb.Sample{Timestamp: now - 1000, Value: 1})))
	require.NoError(t, push(t, ing, "ws-2", ts("up", "api", prompb.Sample{Timestamp: now - 1000, Value: 1})))
	size := func(id string) int64 {
		ing.mu.Lock()
		defer ing.mu.Unlock()
		return ing.dbs[id].maxExemplars.Load()
	}
	require.Zero(t, size("ws-1"))
	require.Zero(t, size("ws-2"))

	series := ts("up", "api", prompb.Sample{Timestamp: now, Value: 2})
	series.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 2, Timestamp: now}}
	require.NoError(t, push(t, ing, "ws-1", series))
	require.EqualValues(t, 100, size("ws-1"))
	require.Zero(t, size("ws-2"))
	_, err := os.Stat(filepath.Join(dir, "ingester", "tsdb", "ws-1", exemplarsMarker))
	require.NoError(t, err)
	got, err := ing.QueryExemplars(tenant.WithID(context.Background(), "ws-1"), &ingesterpb.ExemplarQueryRequest{
		StartTimestampMs: 0, EndTimestampMs: now,
		Matchers: []ingesterpb.ExemplarMatchers{{Matchers: []prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}}}},
	})
	require.NoError(t, err)
	require.Len(t, got.Timeseries, 1, "the first exemplar is kept")
}
