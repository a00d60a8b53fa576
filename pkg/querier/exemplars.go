package querier

import (
	"cmp"
	"context"
	"slices"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-metrics/vigil/pkg/ingester/client"
	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/pb/seriespb"
)

// ExemplarQuerier implements storage.ExemplarQueryable, which Prometheus's
// /api/v1/query_exemplars reads: the exemplars of the workspace in ctx
// held by the ingesters. Blocks in object storage keep no exemplars, as in
// Prometheus (whose exemplars live in memory only).
func (q *Queryable) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	return &exemplarQuerier{q: q, ctx: ctx}, nil
}

type exemplarQuerier struct {
	q   *Queryable
	ctx context.Context
}

// Select returns the exemplars within [start, end] of the series matching
// any of the matcher sets, from a read quorum of ingesters: each series
// once, sorted by labels, its exemplars by timestamp, an exemplar held by
// several replicas (same series and timestamp) once.
func (e *exemplarQuerier) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	req := &ingesterpb.ExemplarQueryRequest{StartTimestampMs: start, EndTimestampMs: end}
	for _, ms := range matchers {
		req.Matchers = append(req.Matchers, ingesterpb.ExemplarMatchers{Matchers: seriespb.ToProtoMatchers(ms)})
	}
	answers, err := onReadQuorum(e.ctx, e.q, func(ctx context.Context, c client.Ingester) ([]prompb.TimeSeries, error) {
		resp, err := c.QueryExemplars(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Timeseries, nil
	})
	if err != nil {
		return nil, err
	}
	return mergeExemplars(answers), nil
}

// mergeExemplars merges the series of several ingesters' answers.
func mergeExemplars(answers [][]prompb.TimeSeries) []exemplar.QueryResult {
	bySeries := map[string]*exemplar.QueryResult{}
	var b labels.ScratchBuilder
	for _, a := range answers {
		for i := range a {
			ts := &a[i]
			lset := ts.ToLabels(&b, nil)
			key := string(lset.Bytes(nil))
			r := bySeries[key]
			if r == nil {
				r = &exemplar.QueryResult{SeriesLabels: lset}
				bySeries[key] = r
			}
			for _, ex := range ts.Exemplars {
				r.Exemplars = append(r.Exemplars, exemplar.Exemplar{
					Labels: ex.ToExemplar(&b, nil).Labels, Value: ex.Value, Ts: ex.Timestamp, HasTs: true,
				})
			}
		}
	}
	out := make([]exemplar.QueryResult, 0, len(bySeries))
	for _, r := range bySeries {
		slices.SortStableFunc(r.Exemplars, func(a, b exemplar.Exemplar) int { return cmp.Compare(a.Ts, b.Ts) })
		// One exemplar per timestamp: the replicas of a series hold the
		// same ones (the TSDB refuses a second one at a timestamp).
		r.Exemplars = slices.CompactFunc(r.Exemplars, func(a, b exemplar.Exemplar) bool { return a.Ts == b.Ts })
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	return out
}
