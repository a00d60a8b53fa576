package ingester

import (
	"context"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
	"github.com/vigil-metrics/vigil/pkg/pb/seriespb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// GRPCServer serves an Ingester over gRPC.
type GRPCServer struct {
	ing    *Ingester
	pushes *remotewrite.FreeList[*pushRequest] // the buffers of Push requests
}

// NewGRPCServer returns the gRPC face of ing.
func NewGRPCServer(ing *Ingester) *GRPCServer {
	return &GRPCServer{ing: ing, pushes: newPushRequests()}
}

var _ ingesterpb.IngesterServer = (*GRPCServer)(nil)

func byName(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) }

// sortedByName is slices.IsSortedFunc(ls, byName), without the calls.
func sortedByName(ls []prompb.Label) bool {
	for i := 1; i < len(ls); i++ {
		if ls[i].Name < ls[i-1].Name {
			return false
		}
	}
	return true
}

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
		if ls := req.Timeseries[i].Labels; !sortedByName(ls) {
			slices.SortFunc(ls, byName)
		}
	}
	if err := s.ing.Push(ctx, req); err != nil {
		return nil, apierror.ToGRPC(err)
	}
	return &ingesterpb.PushResponse{}, nil
}

func (s *GRPCServer) querier(ctx context.Context, mint, maxt int64, pm []prompb.LabelMatcher) (context.Context, storage.ChunkQuerier, []*labels.Matcher, error) {
	ctx, err := incomingTenant(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	matchers, err := seriespb.FromProtoMatchers(pm)
	if err != nil {
		return nil, nil, nil, apierror.ToGRPC(apierror.New(apierror.BadData, apierror.IDInvalidQuery, "invalid matchers: %v", err))
	}
	q, err := s.ing.Querier(ctx, mint, maxt)
	if err != nil {
		return nil, nil, nil, apierror.ToGRPC(err)
	}
	return ctx, q, matchers, nil
}

// maxStreamMessageBytes bounds the chunk bytes of one QueryStream message.
const maxStreamMessageBytes = 1 << 20

// QueryStream implements ingesterpb.IngesterServer: it streams the matching
// series, sorted by labels, with their chunks as the TSDB encodes them, in
// messages of at most -ingester.query-stream-batch-size series and about
// 1 MB of chunks. The stream waits for the querier to read (flow control),
// so neither side holds more than a few messages.
func (s *GRPCServer) QueryStream(req *ingesterpb.QueryRequest, stream ingesterpb.Ingester_QueryStreamServer) error {
	ctx, q, matchers, err := s.querier(stream.Context(), req.StartTimestampMs, req.EndTimestampMs, req.Matchers)
	if err != nil {
		return err
	}
	defer q.Close()
	hints := &storage.SelectHints{Start: req.StartTimestampMs, End: req.EndTimestampMs}
	if req.SkipChunks {
		hints.Func = SeriesFunc
	}
	ss := q.Select(ctx, true, hints, matchers...)
	// Send marshals the message before it returns: the chunk bytes, which
	// the querier keeps valid until it is closed, are not referenced
	// afterwards.
	err = seriespb.SendChunkSeries(ss, req.SkipChunks, s.ing.cfg.QueryStreamBatch, maxStreamMessageBytes, func(batch []seriespb.StreamingSeries) error {
		return stream.Send(&ingesterpb.QueryStreamResponse{Series: batch})
	})
	if err != nil {
		return apierror.ToGRPC(err)
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

// MetricsMetadata implements ingesterpb.IngesterServer.
func (s *GRPCServer) MetricsMetadata(ctx context.Context, req *ingesterpb.MetricsMetadataRequest) (*ingesterpb.MetricsMetadataResponse, error) {
	ctx, err := incomingTenant(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := s.ing.MetricsMetadata(ctx, req)
	if err != nil {
		return nil, apierror.ToGRPC(err)
	}
	return resp, nil
}

// QueryExemplars implements ingesterpb.IngesterServer.
func (s *GRPCServer) QueryExemplars(ctx context.Context, req *ingesterpb.ExemplarQueryRequest) (*ingesterpb.ExemplarQueryResponse, error) {
	ctx, err := incomingTenant(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := s.ing.QueryExemplars(ctx, req)
	if err != nil {
		return nil, apierror.ToGRPC(err)
	}
	return resp, nil
}
