package client

import (
	"context"
	"errors"
	"io"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
)

// remoteQuerier is a storage.Querier over one ingester's gRPC API. Select
// reads the whole stream before returning, so that transport errors are
// known before the series are iterated.
type remoteQuerier struct {
	client     ingesterpb.IngesterClient
	ctx        context.Context // carries the workspace in outgoing metadata
	mint, maxt int64
}

func (q *remoteQuerier) Select(_ context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	start, end := q.mint, q.maxt
	if hints != nil {
		start, end = max(start, hints.Start), min(end, hints.End)
	}
	stream, err := q.client.QueryStream(q.ctx, &ingesterpb.QueryRequest{
		StartTimestampMs: start,
		EndTimestampMs:   end,
		Matchers:         ToProtoMatchers(ms),
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	res := &prompb.QueryResult{}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return storage.ErrSeriesSet(err)
		}
		for i := range msg.Timeseries {
			res.Timeseries = append(res.Timeseries, &msg.Timeseries[i])
		}
	}
	return remote.FromQueryResult(sortSeries, res)
}

func (q *remoteQuerier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	resp, err := q.client.LabelNames(q.ctx, &ingesterpb.LabelNamesRequest{
		StartTimestampMs: q.mint, EndTimestampMs: q.maxt, Matchers: ToProtoMatchers(ms),
	})
	if err != nil {
		return nil, nil, err
	}
	return resp.LabelNames, nil, nil
}

func (q *remoteQuerier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	resp, err := q.client.LabelValues(q.ctx, &ingesterpb.LabelValuesRequest{
		LabelName: name, StartTimestampMs: q.mint, EndTimestampMs: q.maxt, Matchers: ToProtoMatchers(ms),
	})
	if err != nil {
		return nil, nil, err
	}
	return resp.LabelValues, nil, nil
}

func (q *remoteQuerier) Close() error { return nil }
