package client

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
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

	mu      sync.Mutex
	cancels []context.CancelFunc
	closed  bool
}

func (q *remoteQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	start, end := q.mint, q.maxt
	req := &ingesterpb.QueryRequest{Matchers: ingesterpb.ToProtoMatchers(ms)}
	if hints != nil {
		start, end = max(start, hints.Start), min(end, hints.End)
		req.SkipChunks = hints.Func == seriesFunc
	}
	req.StartTimestampMs, req.EndTimestampMs = start, end
	// The stream lives until the querier is closed, or until ctx (the
	// query's) ends, whichever comes first.
	streamCtx, cancel := context.WithCancel(q.ctx)
	stop := context.AfterFunc(ctx, cancel)
	if !q.track(func() { stop(); cancel() }) {
		return storage.ErrChunkSeriesSet(errors.New("querier is closed"))
	}
	stream, err := q.client.QueryStream(streamCtx, req)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	return ingesterpb.NewChunkSeriesSet(func() ([]ingesterpb.StreamingSeries, error) {
		msg, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return msg.Series, nil
	})
}

// track registers the cancel of a stream, to be called by Close.
func (q *remoteQuerier) track(cancel context.CancelFunc) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		cancel()
		return false
	}
	q.cancels = append(q.cancels, cancel)
	return true
}

func (q *remoteQuerier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	resp, err := q.client.LabelNames(q.ctx, &ingesterpb.LabelNamesRequest{
		StartTimestampMs: q.mint, EndTimestampMs: q.maxt, Matchers: ingesterpb.ToProtoMatchers(ms),
	})
	if err != nil {
		return nil, nil, err
	}
	return resp.LabelNames, nil, nil
}

func (q *remoteQuerier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	resp, err := q.client.LabelValues(q.ctx, &ingesterpb.LabelValuesRequest{
		LabelName: name, StartTimestampMs: q.mint, EndTimestampMs: q.maxt, Matchers: ingesterpb.ToProtoMatchers(ms),
	})
	if err != nil {
		return nil, nil, err
	}
	return resp.LabelValues, nil, nil
}

// Close ends every stream the querier opened.
func (q *remoteQuerier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, cancel := range q.cancels {
		cancel()
	}
	q.cancels, q.closed = nil, true
	return nil
}
