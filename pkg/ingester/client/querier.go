package client

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/pb/seriespb"
)

// seriesFunc is the SelectHints.Func of a select that wants labels only.
const seriesFunc = "series"

// remoteQuerier is a storage.ChunkQuerier over one ingester's gRPC API.
// Select streams: it reads the ingester's messages as its series set is
// iterated, so the querier holds no more than the series it was handed.
type remoteQuerier struct {
	client     ingesterpb.IngesterClient
	ctx        context.Context // carries the workspace in outgoing metadata
	mint, maxt int64
	streams    seriespb.Streams
}

func (q *remoteQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	start, end := q.mint, q.maxt
	req := &ingesterpb.QueryRequest{Matchers: seriespb.ToProtoMatchers(ms)}
	if hints != nil {
		start, end = max(start, hints.Start), min(end, hints.End)
		req.SkipChunks = hints.Func == seriesFunc
	}
	req.StartTimestampMs, req.EndTimestampMs = start, end
	streamCtx, err := q.streams.Context(q.ctx, ctx)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	stream, err := q.client.QueryStream(streamCtx, req)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	return seriespb.NewChunkSeriesSet(func() ([]seriespb.StreamingSeries, error) {
		msg, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return msg.Series, nil
	})
}

func (q *remoteQuerier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	resp, err := q.client.LabelNames(q.ctx, &ingesterpb.LabelNamesRequest{
		StartTimestampMs: q.mint, EndTimestampMs: q.maxt, Matchers: seriespb.ToProtoMatchers(ms),
	})
	if err != nil {
		return nil, nil, err
	}
	return resp.LabelNames, nil, nil
}

func (q *remoteQuerier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	resp, err := q.client.LabelValues(q.ctx, &ingesterpb.LabelValuesRequest{
		LabelName: name, StartTimestampMs: q.mint, EndTimestampMs: q.maxt, Matchers: seriespb.ToProtoMatchers(ms),
	})
	if err != nil {
		return nil, nil, err
	}
	return resp.LabelValues, nil, nil
}

// Close ends every stream the querier opened.
func (q *remoteQuerier) Close() error {
	q.streams.Close()
	return nil
}
