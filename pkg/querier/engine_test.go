package querier

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

func TestTreeDepth(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want int
	}{
		{`up`, 1},
		{`sum(rate(http_requests_total{job="api"}[5m]))`, 4},
		{`label_replace(up, "a", "b", "c", "d")`, 2},
		{`a + b + c + d`, 4},
		{`(a + b) + (c + d)`, 4},
		{`((((1))))`, 5},
		{`max_over_time(rate(x[5m])[1h:1m])`, 5},
	} {
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(tc.expr)
		require.NoError(t, err)
		require.Equal(t, tc.want, treeDepth(expr, 1000), tc.expr)
	}
	chain := strings.TrimSuffix(strings.Repeat("up + ", 3000), " + ")
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(chain)
	require.NoError(t, err)
	require.Equal(t, 3000, treeDepth(expr, 5000))
	require.Equal(t, 129, treeDepth(expr, 128), "stops past the limit")
}

func TestRequestQSPThresholds(t *testing.T) {
	for _, tc := range []struct {
		name       string
		form       url.Values
		warn, fail int64
		want       qspThresholds
		err        bool
	}{
		{"none", url.Values{}, 0, 0, qspThresholds{}, false},
		{"the workspace's", url.Values{}, 10, 20, qspThresholds{10, 20}, false},
		{"the request's", url.Values{paramQSPWarning: {"5"}, paramQSPError: {"7"}}, 0, 0, qspThresholds{5, 7}, false},
		{"a request lowers", url.Values{paramQSPWarning: {"5"}, paramQSPError: {"7"}}, 10, 20, qspThresholds{5, 7}, false},
		{"a request cannot raise", url.Values{paramQSPWarning: {"50"}, paramQSPError: {"70"}}, 10, 20, qspThresholds{10, 20}, false},
		{"zero", url.Values{paramQSPError: {"0"}}, 0, 0, qspThresholds{}, true},
		{"not a number", url.Values{paramQSPWarning: {"1e6"}}, 0, 0, qspThresholds{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := requestQSPThresholds(tc.form, tc.warn, tc.fail)
			if tc.err {
				require.Equal(t, 400, apierror.StatusOf(err), "%v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// sliceQueryable serves fixed float series, through the same fetch and
// counting path as the ingesters' answers.
type sliceQueryable struct {
	series  []storage.Series
	limiter func(ctx context.Context) *queryLimiter
}

func (q sliceQueryable) Querier(int64, int64) (storage.Querier, error) { return q, nil }
func (q sliceQueryable) Select(ctx context.Context, _ bool, _ *storage.SelectHints, _ ...*labels.Matcher) storage.SeriesSet {
	var cs []storage.ChunkSeries
	for _, s := range q.series {
		cs = append(cs, storage.NewSeriesToChunkEncoder(s))
	}
	return newFetchSet(&chunkSlice{series: cs}, q.limiter(ctx))
}
func (sliceQueryable) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (sliceQueryable) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (sliceQueryable) Close() error { return nil }

type chunkSlice struct {
	series []storage.ChunkSeries
	i      int
}

func (s *chunkSlice) Next() bool                        { s.i++; return s.i <= len(s.series) }
func (s *chunkSlice) At() storage.ChunkSeries           { return s.series[s.i-1] }
func (s *chunkSlice) Err() error                        { return nil }
func (s *chunkSlice) Warnings() annotations.Annotations { return nil }

// TestQSPThresholds: a query over its warning threshold answers with a
// warning, one over its error threshold is refused with its ID, one at
// either runs as if there were none; the thresholds compare with the
// engine's own count of samples processed.
func TestQSPThresholds(t *testing.T) {
	var series []storage.Series
	for i := 0; i < 100; i++ {
		var samples []chunks.Sample
		for ts := int64(0); ts < 3600_000; ts += 15_000 {
			samples = append(samples, fSample{ts, float64(ts)})
		}
		series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "m_total", "i", string(rune('a'+i%26))+strings.Repeat("x", i/26)), samples))
	}
	q := sliceQueryable{series: series, limiter: func(context.Context) *queryLimiter { return &queryLimiter{} }}
	var runQuery func(th qspThresholds, expr string, step time.Duration) (*promql.Result, int64)
	engine := &guardedEngine{QueryEngine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e9, Timeout: time.Minute}), limits: guardLimits{}}
	ctx := tenant.WithID(context.Background(), "ws-1")
	run := func(th qspThresholds) (*promql.Result, int64) {
		return runQuery(th, `sum(rate(m_total[5m]))`, time.Minute)
	}
	runQuery = func(th qspThresholds, expr string, step time.Duration) (*promql.Result, int64) {
		ctx := withQSPThresholds(ctx, th)
		qry, err := engine.NewRangeQuery(ctx, q, nil, expr, time.Unix(600, 0), time.Unix(3600, 0), step)
		require.NoError(t, err)
		defer qry.Close()
		res := qry.Exec(ctx)
		return res, qry.Stats().Samples.TotalSamples
	}
	res, total := run(qspThresholds{})
	require.NoError(t, res.Err)
	require.Greater(t, total, int64(100_000), "each sample counted in every step whose window holds it")
	require.Empty(t, res.Warnings)

	res, _ = run(qspThresholds{warn: total - 1})
	require.NoError(t, res.Err)
	require.Len(t, res.Warnings, 1)
	require.Contains(t, res.Warnings.AsErrors()[0].Error(), "more than its warning threshold of")
	res, _ = run(qspThresholds{warn: total, fail: total})
	require.NoError(t, res.Err)
	require.Empty(t, res.Warnings)

	res, _ = run(qspThresholds{fail: total - 1})
	require.Equal(t, apierror.IDQuerySamplesProcessed, apierror.From(res.Err).ID, "%v", res.Err)

	// An instant selector reads every sample of a step's lookback and the
	// engine counts one: a query at its threshold runs, whatever it reads.
	for _, step := range []time.Duration{time.Minute, 5 * time.Minute} {
		res, total := runQuery(qspThresholds{}, `sum(m_total)`, step)
		require.NoError(t, res.Err)
		require.EqualValues(t, 100*(3000/int(step.Seconds())+1), total)
		res, _ = runQuery(qspThresholds{fail: total}, `sum(m_total)`, step)
		require.NoError(t, res.Err, "step %s", step)
		res, _ = runQuery(qspThresholds{fail: total - 1}, `sum(m_total)`, step)
		require.Equal(t, apierror.IDQuerySamplesProcessed, apierror.From(res.Err).ID, "%v", res.Err)
	}
}

type fSample struct {
	t int64
	f float64
}

func (s fSample) T() int64                    { return s.t }
func (s fSample) ST() int64                   { return 0 }
func (s fSample) F() float64                  { return s.f }
func (fSample) H() *histogram.Histogram       { return nil }
func (fSample) FH() *histogram.FloatHistogram { return nil }
func (fSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fSample) Copy() chunks.Sample         { return s }
