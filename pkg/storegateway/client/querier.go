package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-metrics/vigil/pkg/pb/seriespb"
	"github.com/vigil-metrics/vigil/pkg/pb/storegatewaypb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// seriesFunc is the SelectHints.Func of a select that wants labels only.
const seriesFunc = "series"

// NewRemoteQuerier returns a Querier over the named blocks that a
// store-gateway serves through its gRPC API c. The workspace is taken from
// ctx, which the querier's reads live within.
func NewRemoteQuerier(ctx context.Context, c storegatewaypb.StoreGatewayClient, blockIDs []string, mint, maxt int64) (Querier, error) {
	ctx, err := tenant.OutgoingContext(ctx)
	if err != nil {
		return nil, err
	}
	return &remoteQuerier{client: c, ctx: ctx, blocks: blockIDs, mint: mint, maxt: maxt}, nil
}

// remoteQuerier is a Querier over one store-gateway's gRPC API. Select
// streams: it reads the store-gateway's messages as its series set is
// iterated, so the caller holds no more than the series it was handed.
type remoteQuerier struct {
	client     storegatewaypb.StoreGatewayClient
	ctx        context.Context // carries the workspace in outgoing metadata
	blocks     []string
	mint, maxt int64

	streams seriespb.Streams

	mu     sync.Mutex
	served []string
}

func (q *remoteQuerier) Served() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.served
}

func (q *remoteQuerier) setServed(served []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.served = served
}

func (q *remoteQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	req := &storegatewaypb.SeriesRequest{StartTimestampMs: q.mint, EndTimestampMs: q.maxt, Matchers: seriespb.ToProtoMatchers(ms), BlockIds: q.blocks}
	if hints != nil {
		req.StartTimestampMs, req.EndTimestampMs = max(q.mint, hints.Start), min(q.maxt, hints.End)
		req.SkipChunks = hints.Func == seriesFunc
	}
	streamCtx, err := q.streams.Context(q.ctx, ctx)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	stream, err := q.client.Series(streamCtx, req)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	// The first message names the blocks served, before any series.
	first := true
	return seriespb.NewChunkSeriesSet(func() ([]seriespb.StreamingSeries, error) {
		msg, err := stream.Recv()
		if first {
			first = false
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("store-gateway ended the stream before naming the blocks it serves")
			}
			if err == nil {
				q.setServed(msg.QueriedBlocks)
			}
		}
		if err != nil {
			return nil, err
		}
		return msg.Series, nil
	})
}

func (q *remoteQuerier) LabelNames(ctx context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	c, err := q.streams.Context(q.ctx, ctx)
	if err != nil {
		return nil, nil, err
	}
	resp, err := q.client.LabelNames(c, &storegatewaypb.LabelNamesRequest{
		StartTimestampMs: q.mint, EndTimestampMs: q.maxt, Matchers: seriespb.ToProtoMatchers(ms), BlockIds: q.blocks,
	})
	if err != nil {
		return nil, nil, err
	}
	q.setServed(resp.QueriedBlocks)
	return resp.LabelNames, nil, nil
}

func (q *remoteQuerier) LabelValues(ctx context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	c, err := q.streams.Context(q.ctx, ctx)
	if err != nil {
		return nil, nil, err
	}
	resp, err := q.client.LabelValues(c, &storegatewaypb.LabelValuesRequest{
		LabelName: name, StartTimestampMs: q.mint, EndTimestampMs: q.maxt, Matchers: seriespb.ToProtoMatchers(ms), BlockIds: q.blocks,
	})
	if err != nil {
		return nil, nil, err
	}
	q.setServed(resp.QueriedBlocks)
	return resp.LabelValues, nil, nil
}

// Close ends every stream the querier opened.
func (q *remoteQuerier) Close() error {
	q.streams.Close()
	return nil
}
