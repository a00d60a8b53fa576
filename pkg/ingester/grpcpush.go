package ingester

import (
	"context"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
)

// pushRequest is a Push request as the gRPC server decodes it: with the
// HTTP decoder's discipline (remotewrite.Decode), into buffers reused from
// one request to the next. Label strings alias buf, which holds a copy of
// the message (gRPC recycles its own receive buffer once decoding returns),
// and the request goes back to the pool once Push returned: the ingester
// copies every label it keeps.
type pushRequest struct {
	buf  []byte
	req  prompb.WriteRequest
	err  error                               // why the message could not be decoded
	pool *remotewrite.FreeList[*pushRequest] // where it goes back
}

// pooledPushes is how many requests' buffers a gRPC server keeps for reuse,
// about as many as are pushed at once.
const pooledPushes = 16

// newPushRequests returns the free list of one gRPC server's requests.
func newPushRequests() *remotewrite.FreeList[*pushRequest] {
	var pool *remotewrite.FreeList[*pushRequest]
	pool = remotewrite.NewFreeList(pooledPushes, func() *pushRequest { return &pushRequest{pool: pool} })
	return pool
}

// maxPooledPush bounds the memory a pooled request keeps, so that one large
// request does not pin its buffers.
const maxPooledPush = 8 << 20

// Unmarshal is what gRPC's codec calls to decode the message. A message it
// cannot decode is kept as p.err, for the handler to refuse as the sender's
// fault (gRPC would make any decoding error an internal one, which
// distributors retry).
func (p *pushRequest) Unmarshal(b []byte) error {
	p.buf = append(p.buf[:0], b...)
	p.req.Timeseries, p.req.Metadata = p.req.Timeseries[:0], p.req.Metadata[:0]
	p.err = remotewrite.Decode(p.buf, &p.req, nil)
	return nil
}

// Reset, String and ProtoMessage make pushRequest a (legacy) protobuf
// message to gRPC's codec. Reset keeps the buffers: Unmarshal overwrites
// what it reuses.
func (p *pushRequest) Reset()         {}
func (p *pushRequest) String() string { return "PushRequest" }
func (p *pushRequest) ProtoMessage()  {}

func (p *pushRequest) release() {
	if cap(p.buf)+remotewrite.Retained(&p.req) > maxPooledPush {
		return
	}
	p.req.Timeseries, p.req.Metadata = p.req.Timeseries[:0], p.req.Metadata[:0]
	p.pool.Put(p)
}

// Register serves s on srv, Push with the pooled decoder.
func (s *GRPCServer) Register(srv grpc.ServiceRegistrar) {
	srv.RegisterService(ingesterpb.ServiceDescWithPush(pushHandler), s)
}

// pushHandler is the gRPC handler of Push: it decodes into a pushRequest of
// the server's pool and returns it there when the call is done.
func pushHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := srv.(*GRPCServer).pushes.Get()
	defer in.release()
	if err := dec(in); err != nil {
		return nil, err
	}
	if in.err != nil {
		return nil, apierror.ToGRPC(apierror.New(apierror.BadData, apierror.IDInvalidRequestBody,
			"request is not a valid remote-write message: %v", in.err))
	}
	push := srv.(ingesterpb.IngesterServer).Push
	if interceptor == nil {
		return push(ctx, &in.req)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/vigil.ingester.v1.Ingester/Push"}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return push(ctx, &req.(*pushRequest).req)
	})
}
