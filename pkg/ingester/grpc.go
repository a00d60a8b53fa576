package ingester

import (
	"context"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/ingester/client"
	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// GRPCServer serves an Ingester over gRPC.
type GRPCServer struct {
	ing *Ingester
}

// NewGRPCServer returns the gRPC face of ing.
func NewGRPCServer(ing *Ingester) *GRPCServer { return &GRPCServer{ing: ing} }

var _ ingesterpb.IngesterServer = (*GRPCServer)(nil)

func byName(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) }

func incomingTenant(ctx context.Context) (context.Context, error) {
	_, ctx, err := tenant.FromIncomingContext(ctx)
	if err != nil {
		return nil, apierror.ToGRPC(apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err))
	}
	return ctx, nil
}

// Push implements ingesterpb.IngesterServer.
func (s *GRPCServer) Push(ctx context.Context, req *prompb.WriteRequest) (*ingesterpb.PushResponse, error) {
	ctx, err := incomingTenant(ctx)
	if err != nil {
		return nil, err
	}
	for i := range req.Timeseries {
		// Push trusts its caller to sort labels; a remote caller is checked.
		if ls := req.Timeseries[i].Labels; !slices.IsSortedFunc(ls, byName) {
			slices.SortFunc(ls, byName)
		}
	}
	if err := s.ing.Push(ctx, req); err != nil {
		return nil, apierror.ToGRPC(err)
	}
	return &ingesterpb.PushResponse{}, nil
}

func (s *GRPCServer) querier(ctx context.Context, mint, maxt int64, pm []prompb.LabelMatcher) (context.Context, storage.Querier, []*labels.Matcher, error) {
	ctx, err := incomingTenant(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	matchers, err := client.FromProtoMatchers(pm)
	if err != nil {
		return nil, nil, nil, apierror.ToGRPC(apierror.New(apierror.BadData, apierror.IDInvalidQuery, "invalid matchers: %v", err))
	}
	q, err := s.ing.Querier(ctx, mint, maxt)
	if err != nil {
		return nil, nil, nil, apierror.ToGRPC(err)
	}
	return ctx, q, matchers, nil
}

// QueryStream implements ingesterpb.IngesterServer: it streams the matching
// series, sorted by labels, in batches.
func (s *GRPCServer) QueryStream(req *ingesterpb.QueryRequest, stream ingesterpb.Ingester_QueryStreamServer) error {
	ctx, q, matchers, err := s.querier(stream.Context(), req.StartTimestampMs, req.EndTimestampMs, req.Matchers)
	if err != nil {
		return err
	}
	defer q.Close()
	hints := &storage.SelectHints{Start: req.StartTimestampMs, End: req.EndTimestampMs}
	ss := q.Select(ctx, true, hints, matchers...)
	batch := make([]prompb.TimeSeries, 0, s.ing.cfg.QueryStreamBatch)
	var it chunkenc.Iterator
	for ss.Next() {
		series := ss.At()
		ts := prompb.TimeSeries{Labels: prompb.FromLabels(series.Labels(), nil)}
		it = series.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				t, v := it.At()
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t, Value: v})
			case chunkenc.ValHistogram:
				t, h := it.AtHistogram(nil)
				ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(t, h))
			case chunkenc.ValFloatHistogram:
				t, h := it.AtFloatHistogram(nil)
				ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(t, h))
			}
		}
		if err := it.Err(); err != nil {
			return apierror.ToGRPC(err)
		}
		batch = append(batch, ts)
		if len(batch) == cap(batch) {
			if err := stream.Send(&ingesterpb.QueryStreamResponse{Timeseries: batch}); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := ss.Err(); err != nil {
		return apierror.ToGRPC(err)
	}
	if len(batch) > 0 {
		return stream.Send(&ingesterpb.QueryStreamResponse{Timeseries: batch})
	}
	return nil
}

// LabelNames implements ingesterpb.IngesterServer.
func (s *GRPCServer) LabelNames(ctx context.Context, req *ingesterpb.LabelNamesRequest) (*ingesterpb.LabelNamesResponse, error) {
	ctx, q, matchers, err := s.querier(ctx, req.StartTimestampMs, req.EndTimestampMs, req.Matchers)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	names, _, err := q.LabelNames(ctx, nil, matchers...)
	if err != nil {
		return nil, apierror.ToGRPC(err)
	}
	return &ingesterpb.LabelNamesResponse{LabelNames: names}, nil
}

// LabelValues implements ingesterpb.IngesterServer.
func (s *GRPCServer) LabelValues(ctx context.Context, req *ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
	ctx, q, matchers, err := s.querier(ctx, req.StartTimestampMs, req.EndTimestampMs, req.Matchers)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	values, _, err := q.LabelValues(ctx, req.LabelName, nil, matchers...)
	if err != nil {
		return nil, apierror.ToGRPC(err)
	}
	return &ingesterpb.LabelValuesResponse{LabelValues: values}, nil
}
