package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/pb/storegatewaypb"
)

// OpenSeries sends a Series request and reads its first message: it returns
// the requested blocks the store-gateway serves and the series that follow,
// read from the stream as the set is iterated. The stream lives as long as
// ctx.
func OpenSeries(ctx context.Context, c StoreGateway, req *storegatewaypb.SeriesRequest) ([]string, storage.ChunkSeriesSet, error) {
	stream, err := c.Series(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("store-gateway ended the stream before naming the blocks it serves")
	}
	if err != nil {
		return nil, nil, err
	}
	pending := first.Series
	return first.QueriedBlocks, ingesterpb.NewChunkSeriesSet(func() ([]ingesterpb.StreamingSeries, error) {
		if len(pending) > 0 {
			batch := pending
			pending = nil
			return batch, nil
		}
		msg, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return msg.Series, nil
	}), nil
}
