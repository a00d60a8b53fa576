package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"

	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// EncodedRequest is the share of a remote-write request that one or more
// ingesters get, encoded once, on the first send: every gRPC call sends the
// same bytes. Series arrive with the bytes they were decoded from, which
// are copied as they are; only a series the distributor changed (labels
// sorted, samples dropped) is encoded again. Metadata entries are encoded
// each time: they are few.
type EncodedRequest struct {
	req  *prompb.WriteRequest
	raw  [][]byte // raw[i] encodes req.Timeseries[i]; nil (or a nil element): encode it
	idxs []int    // the series to send; nil: every series, and every metadata entry
	md   []int    // the metadata entries to send, when idxs is not nil

	bufs *EncodeBuffers
	once sync.Once
	out  []byte
	err  error   // why it could not be encoded
	buf  *[]byte // out's pooled buffer, if it has one
}

// EncodeBuffers are the buffers encoded requests take and give back, owned
// by their sender (a distributor). A nil *EncodeBuffers pools nothing.
type EncodeBuffers struct {
	list *remotewrite.FreeList[*[]byte]
}

// pooledEncodings is how many encodings' buffers a sender keeps for reuse.
const pooledEncodings = 16

// NewEncodeBuffers returns a sender's buffers.
func NewEncodeBuffers() *EncodeBuffers {
	return &EncodeBuffers{list: remotewrite.NewFreeList(pooledEncodings, func() *[]byte { return new([]byte) })}
}

// NewEncodedRequest returns the request for the series idxs of req (nil:
// all of them, and all its metadata), encoded into a buffer of bufs (nil: a
// new one). An index of idxs from len(req.Timeseries) on names the metadata
// entry idx-len(req.Timeseries): the sharding keys of a request are those
// of its series followed by those of its metadata. raw, when not nil, holds
// the encoding of every series of req, or nil for a series to encode.
// Neither may change while it is sent.
func NewEncodedRequest(req *prompb.WriteRequest, raw [][]byte, idxs []int, bufs *EncodeBuffers) *EncodedRequest {
	e := &EncodedRequest{req: req, raw: raw, idxs: idxs, bufs: bufs}
	n := len(req.Timeseries)
	if idxs != nil && len(req.Metadata) > 0 {
		series := idxs[:0:0]
		for _, i := range idxs {
			if i >= n {
				e.md = append(e.md, i-n)
			} else {
				series = append(series, i)
			}
		}
		e.idxs = series
	}
	return e
}

func (e *EncodedRequest) series(i int) (*prompb.TimeSeries, []byte) {
	if e.raw == nil {
		return &e.req.Timeseries[i], nil
	}
	return &e.req.Timeseries[i], e.raw[i]
}

// Request is the request as a WriteRequest, for an in-process ingester.
func (e *EncodedRequest) Request() *prompb.WriteRequest {
	if e.idxs == nil {
		return &prompb.WriteRequest{Timeseries: e.req.Timeseries, Metadata: e.req.Metadata}
	}
	sub := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, len(e.idxs))}
	for j, i := range e.idxs {
		sub.Timeseries[j] = e.req.Timeseries[i]
	}
	if len(e.md) > 0 {
		sub.Metadata = make([]prompb.MetricMetadata, len(e.md))
		for j, i := range e.md {
			sub.Metadata[j] = e.req.Metadata[i]
		}
	}
	return sub
}

// maxPooledEncoding bounds the buffers kept for reuse.
const maxPooledEncoding = 8 << 20

// Marshal encodes the request once. gRPC's codec copies an encoding larger
// than smallEncoding into its own buffer for each call, so a pooled buffer is
// read only while a call encodes.
func (e *EncodedRequest) Marshal() ([]byte, error) {
	e.once.Do(func() {
		// A panic here would leave the request marked encoded, and empty,
		// for the other ingesters: it is remembered as the encoding's error
		// before it goes on to the sender (whose recover logs and counts it).
		defer func() {
			if p := recover(); p != nil {
				e.out, e.err = nil, fmt.Errorf("encode push request: panic: %v", p)
				panic(p)
			}
		}()
		n := e.size()
		var b []byte
		if n > smallEncoding && e.bufs != nil {
			e.buf = e.bufs.list.Get()
			b = (*e.buf)[:0]
		}
		if cap(b) < n {
			b = make([]byte, 0, n)
		}
		e.each(func(i int) {
			ts, raw := e.series(i)
			b = remotewrite.AppendSeries(b, ts, raw)
		})
		e.eachMetadata(func(md *prompb.MetricMetadata) {
			b = appendMetadata(b, md)
		})
		e.out = b
		if e.buf != nil {
			*e.buf = b
		}
	})
	return e.out, e.err
}

// each calls f with the index of every series to send.
func (e *EncodedRequest) each(f func(i int)) {
	if e.idxs == nil {
		for i := range e.req.Timeseries {
			f(i)
		}
		return
	}
	for _, i := range e.idxs {
		f(i)
	}
}

// eachMetadata calls f with every metadata entry to send.
func (e *EncodedRequest) eachMetadata(f func(md *prompb.MetricMetadata)) {
	if e.idxs == nil {
		for i := range e.req.Metadata {
			f(&e.req.Metadata[i])
		}
		return
	}
	for _, i := range e.md {
		f(&e.req.Metadata[i])
	}
}

// appendMetadata appends a metadata entry to an encoded WriteRequest
// (field 3).
func appendMetadata(dst []byte, md *prompb.MetricMetadata) []byte {
	n := md.Size()
	dst = binary.AppendUvarint(append(dst, 0x1a), uint64(n))
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	_, _ = md.MarshalToSizedBuffer(dst[start:])
	return dst
}

// size is the length of the encoding.
func (e *EncodedRequest) size() int {
	n := 0
	e.each(func(i int) { n += remotewrite.SeriesSize(e.series(i)) })
	e.eachMetadata(func(md *prompb.MetricMetadata) {
		m := md.Size()
		n += 1 + len(binary.AppendUvarint(nil, uint64(m))) + m
	})
	return n
}

// smallEncoding is the size up to which gRPC's codec sends the bytes
// Marshal returns as they are, rather than a copy in its own buffer (grpc's
// buffer-pooling threshold), and may still be writing them after the call
// returned at its deadline: such encodings are never pooled.
const smallEncoding = 1 << 10

// Release returns the encoding's buffer for reuse; call it once no call
// sends the request any more.
func (e *EncodedRequest) Release() {
	if e.buf != nil && cap(*e.buf) <= maxPooledEncoding {
		e.bufs.list.Put(e.buf)
	}
	e.buf, e.out = nil, nil
}

// Reset, String and ProtoMessage make EncodedRequest a (legacy) protobuf
// message to gRPC's codec, which encodes it with Marshal. It is never
// decoded.
func (e *EncodedRequest) Reset()         {}
func (e *EncodedRequest) String() string { return "EncodedRequest" }
func (e *EncodedRequest) ProtoMessage()  {}

// pushMethod is the full gRPC method of Ingester.Push.
const pushMethod = "/vigil.ingester.v1.Ingester/Push"

// PushEncoded sends an encoded request.
func (c *grpcClient) PushEncoded(ctx context.Context, e *EncodedRequest) error {
	ctx, err := tenant.OutgoingContext(ctx)
	if err != nil {
		return err
	}
	return c.conn.Invoke(ctx, pushMethod, e, new(ingesterpb.PushResponse))
}

// PushEncoded serves an encoded request in process: nothing to encode.
func (c localClient) PushEncoded(ctx context.Context, e *EncodedRequest) error {
	return c.Push(ctx, e.Request())
}

// invoker is the part of a gRPC connection PushEncoded uses.
type invoker interface {
	Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error
}
