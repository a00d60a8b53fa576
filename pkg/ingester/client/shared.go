package client

import (
	"context"
	"sync"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"

	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// SharedRequest is one remote-write request sent whole to several
// ingesters (every replica of every series on the same ingesters, as with
// three ingesters and replication factor 3): it is encoded once, on the
// first send, and every gRPC call sends the same bytes.
type SharedRequest struct {
	req  *prompb.WriteRequest
	once sync.Once
	buf  []byte
	err  error
}

// NewSharedRequest wraps req, which must not change while it is sent.
func NewSharedRequest(req *prompb.WriteRequest) *SharedRequest { return &SharedRequest{req: req} }

// Request is the wrapped request.
func (s *SharedRequest) Request() *prompb.WriteRequest { return s.req }

// Marshal encodes the request once; gRPC's codec copies the bytes into its
// own buffer for each call, so they are never handed to another owner.
func (s *SharedRequest) Marshal() ([]byte, error) {
	s.once.Do(func() { s.buf, s.err = s.req.Marshal() })
	return s.buf, s.err
}

// Reset, String and ProtoMessage make SharedRequest a (legacy) protobuf
// message to gRPC's codec, which encodes it with Marshal. It is never
// decoded.
func (s *SharedRequest) Reset()         {}
func (s *SharedRequest) String() string { return "SharedRequest" }
func (s *SharedRequest) ProtoMessage()  {}

// pushMethod is the full gRPC method of Ingester.Push.
const pushMethod = "/vigil.ingester.v1.Ingester/Push"

// PushShared sends a shared request.
func (c *grpcClient) PushShared(ctx context.Context, s *SharedRequest) error {
	ctx, err := tenant.OutgoingContext(ctx)
	if err != nil {
		return err
	}
	return c.conn.Invoke(ctx, pushMethod, s, new(ingesterpb.PushResponse))
}

// PushShared serves a shared request in process: nothing to encode.
func (c localClient) PushShared(ctx context.Context, s *SharedRequest) error {
	return c.Push(ctx, s.req)
}

// invoker is the part of a gRPC connection PushShared uses.
type invoker interface {
	Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error
}
