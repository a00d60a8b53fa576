// Package frontendpb is the gRPC service between the query-frontend and the
// queriers that pull work from it, after Mimir's frontend v1 Process model:
// a querier opens a bidirectional stream, the frontend sends it one HTTP
// request (dskit's httpgrpc.HTTPRequest) at a time and the querier answers
// each with an httpgrpc.HTTPResponse before it is sent the next.
//
// The service is declared here by hand, over dskit's messages, so that it
// needs no generated code of its own; both sides import only this package.
package frontendpb

import (
	"context"

	"github.com/grafana/dskit/httpgrpc"
	"google.golang.org/grpc"
)

// Metadata keys and headers of the protocol.
const (
	// QuerierIDKey is the gRPC metadata key naming the querier that opens
	// a stream; the frontend's fair queue counts a querier's streams by it.
	QuerierIDKey = "vigil-querier-id"
	// WorkspaceHeader carries the workspace of a request the frontend
	// sends. It is set by the frontend only: the stream is on the internal
	// gRPC port, and the public port never forwards it.
	WorkspaceHeader = "X-Vigil-Workspace"
)

const processMethod = "/vigil.frontend.Frontend/Process"

// FrontendServer is the frontend's side of the service.
type FrontendServer interface {
	// Process serves one querier stream until the stream or the frontend
	// ends.
	Process(ProcessServer) error
}

// ProcessServer is the frontend's end of one stream.
type ProcessServer interface {
	Send(*httpgrpc.HTTPRequest) error
	Recv() (*httpgrpc.HTTPResponse, error)
	Context() context.Context
}

// ProcessClient is the querier's end of one stream.
type ProcessClient interface {
	Recv() (*httpgrpc.HTTPRequest, error)
	Send(*httpgrpc.HTTPResponse) error
	CloseSend() error
}

// ServiceDesc describes the service for grpc.Server.RegisterService.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: "vigil.frontend.Frontend",
	HandlerType: (*FrontendServer)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Process",
		Handler:       processHandler,
		ServerStreams: true,
		ClientStreams: true,
	}},
	Metadata: "frontendpb/frontend.go",
}

// Register registers srv with s.
func Register(s grpc.ServiceRegistrar, srv FrontendServer) { s.RegisterService(&ServiceDesc, srv) }

func processHandler(srv any, stream grpc.ServerStream) error {
	return srv.(FrontendServer).Process(&serverStream{stream})
}

type serverStream struct{ grpc.ServerStream }

func (s *serverStream) Send(r *httpgrpc.HTTPRequest) error { return s.SendMsg(r) }

func (s *serverStream) Recv() (*httpgrpc.HTTPResponse, error) {
	m := new(httpgrpc.HTTPResponse)
	if err := s.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

// Process opens a stream to the frontend at the other end of conn.
func Process(ctx context.Context, conn grpc.ClientConnInterface) (ProcessClient, error) {
	s, err := conn.NewStream(ctx, &ServiceDesc.Streams[0], processMethod)
	if err != nil {
		return nil, err
	}
	return &clientStream{s}, nil
}

type clientStream struct{ grpc.ClientStream }

func (c *clientStream) Send(r *httpgrpc.HTTPResponse) error { return c.SendMsg(r) }

func (c *clientStream) Recv() (*httpgrpc.HTTPRequest, error) {
	m := new(httpgrpc.HTTPRequest)
	if err := c.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}
