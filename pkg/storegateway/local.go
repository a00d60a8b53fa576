package storegateway

import (
	"context"
	"io"
	"strings"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/pb/storegatewaypb"
)

// LocalClient serves the store-gateway of this process to its querier
// without gRPC: messages are handed over through a channel (one in flight,
// as a stream's flow control allows), with their labels and chunk bytes
// copied, since the blocks they point into may close once the call ends.
func LocalClient(g *StoreGateway) storegatewaypb.StoreGatewayClient { return localClient{g} }

type localClient struct{ g *StoreGateway }

// incoming turns the caller's outgoing metadata (the workspace) into what
// the server reads.
func incoming(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	return metadata.NewIncomingContext(ctx, md)
}

func (c localClient) LabelNames(ctx context.Context, req *storegatewaypb.LabelNamesRequest, _ ...grpc.CallOption) (*storegatewaypb.LabelNamesResponse, error) {
	resp, err := c.g.LabelNames(incoming(ctx), req)
	if err != nil {
		return nil, err
	}
	resp.LabelNames = cloneStrings(resp.LabelNames)
	return resp, nil
}

func (c localClient) LabelValues(ctx context.Context, req *storegatewaypb.LabelValuesRequest, _ ...grpc.CallOption) (*storegatewaypb.LabelValuesResponse, error) {
	resp, err := c.g.LabelValues(incoming(ctx), req)
	if err != nil {
		return nil, err
	}
	resp.LabelValues = cloneStrings(resp.LabelValues)
	return resp, nil
}

func (c localClient) Series(ctx context.Context, req *storegatewaypb.SeriesRequest, _ ...grpc.CallOption) (storegatewaypb.StoreGateway_SeriesClient, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &localStream{ctx: incoming(ctx), msgs: make(chan *storegatewaypb.SeriesResponse), done: make(chan struct{})}
	go func() {
		s.err = c.g.Series(req, s)
		close(s.done)
	}()
	return &localSeriesClient{stream: s, ctx: ctx, cancel: cancel}, nil
}

// localStream is the server's side of a local Series call.
type localStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs chan *storegatewaypb.SeriesResponse
	done chan struct{}
	err  error // set before done closes
}

func (s *localStream) Context() context.Context { return s.ctx }

func (s *localStream) Send(m *storegatewaypb.SeriesResponse) error {
	cp := &storegatewaypb.SeriesResponse{QueriedBlocks: cloneStrings(m.QueriedBlocks), Series: cloneSeries(m.Series)}
	select {
	case s.msgs <- cp:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// localSeriesClient is the querier's side of a local Series call.
type localSeriesClient struct {
	grpc.ClientStream
	stream *localStream
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *localSeriesClient) Recv() (*storegatewaypb.SeriesResponse, error) {
	select {
	case m := <-c.stream.msgs:
		return m, nil
	case <-c.ctx.Done():
		c.cancel()
		return nil, c.ctx.Err()
	case <-c.stream.done:
		// The server may have sent its last message just before ending.
		select {
		case m := <-c.stream.msgs:
			return m, nil
		default:
		}
		c.cancel()
		if c.stream.err != nil {
			return nil, c.stream.err
		}
		return nil, io.EOF
	}
}

func cloneStrings(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.Clone(s)
	}
	return out
}

// cloneSeries copies a batch: the server reuses it, and its strings and
// bytes point into blocks that may close once the call ends.
func cloneSeries(in []ingesterpb.StreamingSeries) []ingesterpb.StreamingSeries {
	out := make([]ingesterpb.StreamingSeries, len(in))
	for i, s := range in {
		out[i].Labels = make([]prompb.Label, len(s.Labels))
		for j, l := range s.Labels {
			out[i].Labels[j] = prompb.Label{Name: strings.Clone(l.Name), Value: strings.Clone(l.Value)}
		}
		out[i].Chunks = make([]ingesterpb.Chunk, len(s.Chunks))
		for j, c := range s.Chunks {
			c.Data = append([]byte(nil), c.Data...)
			out[i].Chunks[j] = c
		}
	}
	return out
}
