package ingester

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/pb/seriespb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// QueryExemplars returns the exemplars of the workspace in ctx that the
// head's exemplar storage holds within [start, end] of the series matching
// any of the matcher sets of req: each series' labels with its exemplars,
// sorted by timestamp. A workspace with no data here answers none.
func (i *Ingester) QueryExemplars(ctx context.Context, req *ingesterpb.ExemplarQueryRequest) (*ingesterpb.ExemplarQueryResponse, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	sets := make([][]*labels.Matcher, 0, len(req.Matchers))
	for _, m := range req.Matchers {
		ms, err := seriespb.FromProtoMatchers(m.Matchers)
		if err != nil {
			return nil, apierror.New(apierror.BadData, apierror.IDInvalidQuery, "invalid matchers: %v", err)
		}
		sets = append(sets, ms)
	}
	u, err := i.acquire(ctx, id, false)
	if err != nil || u == nil {
		return &ingesterpb.ExemplarQueryResponse{}, err
	}
	defer u.release()
	eq, err := u.db.ExemplarQuerier(ctx)
	if err != nil {
		return nil, err
	}
	res, err := eq.Select(req.StartTimestampMs, req.EndTimestampMs, sets...)
	if err != nil {
		return nil, err
	}
	out := &ingesterpb.ExemplarQueryResponse{Timeseries: make([]prompb.TimeSeries, 0, len(res))}
	for _, r := range res {
		ts := prompb.TimeSeries{Labels: prompb.FromLabels(r.SeriesLabels, nil), Exemplars: make([]prompb.Exemplar, 0, len(r.Exemplars))}
		for _, e := range r.Exemplars {
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: prompb.FromLabels(e.Labels, nil), Value: e.Value, Timestamp: e.Ts})
		}
		out.Timeseries = append(out.Timeseries, ts)
	}
	return out, nil
}
