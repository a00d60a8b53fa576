package ingesterpb

import (
	"slices"

	"google.golang.org/grpc"
)

// ServiceDescWithPush returns the Ingester service's description with Push
// served by push instead of the generated handler, for a server that decodes
// Push requests itself (into pooled buffers, say). The other methods keep
// their generated handlers.
func ServiceDescWithPush(push grpc.MethodHandler) *grpc.ServiceDesc {
	d := _Ingester_serviceDesc
	d.Methods = slices.Clone(d.Methods)
	for i := range d.Methods {
		if d.Methods[i].MethodName == "Push" {
			d.Methods[i].Handler = push
		}
	}
	return &d
}
