package storegateway

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/go-kit/log/level"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/pb/storegatewaypb"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

var _ storegatewaypb.StoreGatewayServer = (*StoreGateway)(nil)

// maxStreamMessageBytes bounds the chunk bytes of one Series message.
const maxStreamMessageBytes = 1 << 20

// seriesFunc is the SelectHints.Func of a select that wants labels only.
const seriesFunc = "series"

// opened is the querier over the requested blocks this store-gateway
// serves, and their IDs.
type opened struct {
	querier storage.ChunkQuerier
	served  []string
	release []func()
}

func (o *opened) Close() {
	if o.querier != nil {
		_ = o.querier.Close()
	}
	for _, r := range o.release {
		r()
	}
}

// open opens the requested blocks of the workspace in ctx over [mint, maxt].
// A block that cannot be opened (deleted meanwhile, object storage out of
// reach) is left out of served: the querier asks another replica for it.
func (g *StoreGateway) open(ctx context.Context, ids []string, mint, maxt int64) (context.Context, *opened, error) {
	ws, ctx, err := tenant.FromIncomingContext(ctx)
	if err == nil {
		err = tenant.ValidID(ws)
	}
	if err != nil {
		return nil, nil, apierror.ToGRPC(apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err))
	}
	if len(ids) > maxBlocksPerRequest {
		return nil, nil, apierror.ToGRPC(apierror.New(apierror.BadData, apierror.IDInvalidQuery, "%d blocks requested, at most %d per request", len(ids), maxBlocksPerRequest))
	}
	o := &opened{}
	var queriers []storage.ChunkQuerier
	for _, s := range ids {
		id, err := ulid.Parse(s)
		if err != nil {
			o.Close()
			return nil, nil, apierror.ToGRPC(apierror.New(apierror.BadData, apierror.IDInvalidQuery, "invalid block ID %q", s))
		}
		b, release, err := g.blocks.acquire(ctx, ws, id)
		if err != nil {
			level.Warn(g.logger).Log("msg", "cannot serve block", "workspace", ws, "block", id, "err", err)
			continue
		}
		o.release = append(o.release, release)
		chunks := &remoteChunks{ctx: ctx, bkt: bucket.ForWorkspace(g.bkt, ws), block: s, readAhead: g.cfg.ChunkReadAhead, stats: &g.stats, windows: map[int]window{}}
		q, err := tsdb.NewBlockChunkQuerier(reader{b: b, chunks: chunks}, mint, maxt)
		if err != nil {
			level.Warn(g.logger).Log("msg", "cannot query block", "workspace", ws, "block", id, "err", err)
			continue
		}
		queriers = append(queriers, q)
		o.served = append(o.served, s)
	}
	if len(queriers) > 0 {
		// A series in several blocks gets every block's chunks; the querier
		// merges overlapping samples.
		// Every block is a primary: a block that fails its read fails the
		// call, never becomes a warning beside a smaller answer.
		o.querier = storage.NewMergeChunkQuerier(queriers, nil, storage.NewConcatenatingChunkSeriesMerger())
	}
	return ctx, o, nil
}

// warningsErr turns the warnings of a read into its error: a store-gateway
// answers completely or fails.
func warningsErr(w annotations.Annotations) error {
	if len(w) == 0 {
		return nil
	}
	return errors.Join(w.AsErrors()...)
}

// maxBlocksPerRequest bounds the blocks one request may name.
const maxBlocksPerRequest = 10_000

// Series implements storegatewaypb.StoreGatewayServer.
func (g *StoreGateway) Series(req *storegatewaypb.SeriesRequest, stream storegatewaypb.StoreGateway_SeriesServer) (err error) {
	defer recoverFetch(&err)
	matchers, err := ingesterpb.FromProtoMatchers(req.Matchers)
	if err != nil {
		return apierror.ToGRPC(apierror.New(apierror.BadData, apierror.IDInvalidQuery, "invalid matchers: %v", err))
	}
	ctx, o, err := g.open(stream.Context(), req.BlockIds, req.StartTimestampMs, req.EndTimestampMs)
	if err != nil {
		return err
	}
	defer o.Close()
	if o.querier == nil {
		return stream.Send(&storegatewaypb.SeriesResponse{QueriedBlocks: o.served})
	}
	// The blocks' own chunks go out as they are (the querier reads only the
	// samples of its range): trimming would re-encode every edge chunk.
	hints := &storage.SelectHints{Start: req.StartTimestampMs, End: req.EndTimestampMs, DisableTrimming: true}
	if req.SkipChunks {
		hints.Func = seriesFunc
	}
	ws, _ := tenant.ID(ctx)
	lim := newRequestLimits(g.limits, ws, req.StartTimestampMs, req.EndTimestampMs)
	// Select reads the postings: a block whose index cannot be read fails
	// the call before it claims any block, so the querier asks another
	// replica rather than failing the query.
	ss := &limitedSet{ChunkSeriesSet: o.querier.Select(ctx, true, hints, matchers...), limits: lim}
	if err := stream.Send(&storegatewaypb.SeriesResponse{QueriedBlocks: o.served}); err != nil {
		return err
	}
	err = ingesterpb.SendChunkSeries(ss, req.SkipChunks, g.cfg.SeriesBatch, maxStreamMessageBytes, func(batch []ingesterpb.StreamingSeries) error {
		if err := lim.addChunks(batch); err != nil {
			return err
		}
		return stream.Send(&storegatewaypb.SeriesResponse{Series: batch})
	})
	if err == nil {
		err = warningsErr(ss.Warnings())
	}
	if err != nil {
		return apierror.ToGRPC(err)
	}
	return nil
}

// LabelNames implements storegatewaypb.StoreGatewayServer.
func (g *StoreGateway) LabelNames(ctx context.Context, req *storegatewaypb.LabelNamesRequest) (*storegatewaypb.LabelNamesResponse, error) {
	names, served, err := g.labels(ctx, req.BlockIds, req.StartTimestampMs, req.EndTimestampMs, req.Matchers,
		func(ctx context.Context, q storage.ChunkQuerier, ms []*labels.Matcher) ([]string, error) {
			names, warnings, err := q.LabelNames(ctx, nil, ms...)
			if err == nil {
				err = warningsErr(warnings)
			}
			return names, err
		})
	if err != nil {
		return nil, err
	}
	return &storegatewaypb.LabelNamesResponse{LabelNames: names, QueriedBlocks: served}, nil
}

// LabelValues implements storegatewaypb.StoreGatewayServer.
func (g *StoreGateway) LabelValues(ctx context.Context, req *storegatewaypb.LabelValuesRequest) (*storegatewaypb.LabelValuesResponse, error) {
	values, served, err := g.labels(ctx, req.BlockIds, req.StartTimestampMs, req.EndTimestampMs, req.Matchers,
		func(ctx context.Context, q storage.ChunkQuerier, ms []*labels.Matcher) ([]string, error) {
			values, warnings, err := q.LabelValues(ctx, req.LabelName, nil, ms...)
			if err == nil {
				err = warningsErr(warnings)
			}
			return values, err
		})
	if err != nil {
		return nil, err
	}
	return &storegatewaypb.LabelValuesResponse{LabelValues: values, QueriedBlocks: served}, nil
}

func (g *StoreGateway) labels(ctx context.Context, ids []string, mint, maxt int64, pm []prompb.LabelMatcher,
	f func(context.Context, storage.ChunkQuerier, []*labels.Matcher) ([]string, error)) (_ []string, _ []string, err error) {
	defer recoverFetch(&err)
	matchers, err := ingesterpb.FromProtoMatchers(pm)
	if err != nil {
		return nil, nil, apierror.ToGRPC(apierror.New(apierror.BadData, apierror.IDInvalidQuery, "invalid matchers: %v", err))
	}
	ctx, o, err := g.open(ctx, ids, mint, maxt)
	if err != nil {
		return nil, nil, err
	}
	defer o.Close()
	if o.querier == nil {
		return nil, o.served, nil
	}
	out, err := f(ctx, o.querier, matchers)
	if err != nil {
		return nil, nil, apierror.ToGRPC(err)
	}
	slices.Sort(out)
	// The strings point into the blocks' index, which may be unmapped once
	// the blocks are released: copy them first.
	out = slices.Compact(out)
	for i, v := range out {
		out[i] = strings.Clone(v)
	}
	return out, o.served, nil
}
