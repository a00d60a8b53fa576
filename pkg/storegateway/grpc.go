package storegateway

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/seriespb"
	"github.com/vigil-metrics/vigil/pkg/pb/storegatewaypb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

var _ storegatewaypb.StoreGatewayServer = (*StoreGateway)(nil)

// maxStreamMessageBytes bounds the chunk bytes of one Series message.
const maxStreamMessageBytes = 1 << 20

// seriesFunc is the SelectHints.Func of a select that wants labels only.
const seriesFunc = "series"

// openRequest opens the requested blocks of the workspace of a gRPC call's
// metadata, with its matchers.
func (g *StoreGateway) openRequest(ctx context.Context, ids []string, mint, maxt int64, pm []prompb.LabelMatcher) (context.Context, *blockQuerier, []*labels.Matcher, error) {
	ws, ctx, err := tenant.FromIncomingContext(ctx)
	if err == nil {
		err = tenant.ValidID(ws)
	}
	if err != nil {
		return nil, nil, nil, apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	matchers, err := seriespb.FromProtoMatchers(pm)
	if err != nil {
		return nil, nil, nil, apierror.New(apierror.BadData, apierror.IDInvalidQuery, "invalid matchers: %v", err)
	}
	// The answer is marshalled as it is read: chunks need no copy.
	q, err := g.open(ctx, ws, ids, mint, maxt, false)
	if err != nil {
		return nil, nil, nil, err
	}
	return ctx, q, matchers, nil
}

// Series implements storegatewaypb.StoreGatewayServer.
func (g *StoreGateway) Series(req *storegatewaypb.SeriesRequest, stream storegatewaypb.StoreGateway_SeriesServer) error {
	return apierror.ToGRPC(g.series(req, stream))
}

func (g *StoreGateway) series(req *storegatewaypb.SeriesRequest, stream storegatewaypb.StoreGateway_SeriesServer) (err error) {
	defer recoverFetch(&err)
	ctx, q, matchers, err := g.openRequest(stream.Context(), req.BlockIds, req.StartTimestampMs, req.EndTimestampMs, req.Matchers)
	if err != nil {
		return err
	}
	defer q.Close()
	hints := &storage.SelectHints{Start: req.StartTimestampMs, End: req.EndTimestampMs}
	if req.SkipChunks {
		hints.Func = seriesFunc
	}
	// The postings are read, where selectSet can, before the served
	// blocks are named: a block whose index cannot be read fails the call
	// before it claims any block, so the querier asks another replica
	// rather than failing the query.
	ss, err := q.selectSet(ctx, hints, matchers)
	if err != nil {
		return err
	}
	if err := stream.Send(&storegatewaypb.SeriesResponse{QueriedBlocks: q.Served()}); err != nil {
		return err
	}
	return seriespb.SendChunkSeries(ss, req.SkipChunks, g.cfg.SeriesBatch, maxStreamMessageBytes, func(batch []seriespb.StreamingSeries) error {
		return stream.Send(&storegatewaypb.SeriesResponse{Series: batch})
	})
}

// LabelNames implements storegatewaypb.StoreGatewayServer.
func (g *StoreGateway) LabelNames(ctx context.Context, req *storegatewaypb.LabelNamesRequest) (*storegatewaypb.LabelNamesResponse, error) {
	ctx, q, matchers, err := g.openRequest(ctx, req.BlockIds, req.StartTimestampMs, req.EndTimestampMs, req.Matchers)
	if err != nil {
		return nil, apierror.ToGRPC(err)
	}
	defer q.Close()
	names, _, err := q.LabelNames(ctx, nil, matchers...)
	if err != nil {
		return nil, apierror.ToGRPC(err)
	}
	return &storegatewaypb.LabelNamesResponse{LabelNames: names, QueriedBlocks: q.Served()}, nil
}

// LabelValues implements storegatewaypb.StoreGatewayServer.
func (g *StoreGateway) LabelValues(ctx context.Context, req *storegatewaypb.LabelValuesRequest) (*storegatewaypb.LabelValuesResponse, error) {
	ctx, q, matchers, err := g.openRequest(ctx, req.BlockIds, req.StartTimestampMs, req.EndTimestampMs, req.Matchers)
	if err != nil {
		return nil, apierror.ToGRPC(err)
	}
	defer q.Close()
	values, _, err := q.LabelValues(ctx, req.LabelName, nil, matchers...)
	if err != nil {
		return nil, apierror.ToGRPC(err)
	}
	return &storegatewaypb.LabelValuesResponse{LabelValues: values, QueriedBlocks: q.Served()}, nil
}
