package distributor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"
	"sync"

	"github.com/go-kit/log/level"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Remote-write 1.0 wire details.
const (
	contentTypeProtobuf = "application/x-protobuf"
	protoParamV1        = "prometheus.WriteRequest"
	protoParamV2        = "io.prometheus.write.v2.Request"
)

// pushBuffers are the reusable buffers of one remote-write request.
type pushBuffers struct {
	pool    *remotewrite.FreeList[*pushBuffers]
	body    bytes.Buffer
	decoded []byte
	req     prompb.WriteRequest
	raw     [][]byte // the encoded bytes of every series of req, in decoded
}

// pooledRequests is how many requests' buffers are kept for reuse, about
// the requests a distributor decodes at once.
const pooledRequests = 16

// maxPooledBuffers bounds the buffers kept for reuse: those of a request
// larger than this go to the garbage collector, so that one large request
// does not pin its memory in the pool.
const maxPooledBuffers = 8 << 20

// memory is what the buffers hold on to.
func (b *pushBuffers) memory() int {
	return b.body.Cap() + cap(b.decoded) + remotewrite.Retained(&b.req) + 24*cap(b.raw)
}

// release returns the buffers to the pool, unless they grew too large. The
// series slices keep their capacity (and their label, sample, exemplar and
// histogram slices theirs) for the next request; the decoder overwrites
// every element it reuses.
func (b *pushBuffers) release() {
	if b.memory() > maxPooledBuffers {
		return
	}
	b.req.Timeseries = b.req.Timeseries[:0]
	b.req.Metadata = b.req.Metadata[:0]
	clear(b.raw) // no stale reference into the decoded buffer
	b.raw = b.raw[:0]
	b.body.Reset()
	b.pool.Put(b)
}

// PushHandler serves Prometheus remote write 1.0 (snappy-compressed
// protobuf) for the workspace in the request context.
func (d *Distributor) PushHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, err := d.inflight.start()
		if err != nil {
			d.refuse(w, err, "max_inflight_push_requests")
			return
		}
		bufs := d.buffers.Get()
		// The buffers and the request's share of the in-flight totals are
		// held until every replica is done with the request.
		var once sync.Once
		cleanup := func() {
			once.Do(func() {
				bufs.release()
				t.done()
			})
		}
		defer d.recoverPush(w, r, t)
		if err := d.decode(r, bufs, t); err != nil {
			cleanup()
			d.refuse(w, err, rejectReason(err))
			return
		}
		if err := d.push(r.Context(), &bufs.req, bufs.raw, cleanup); err != nil {
			if !apierror.IsClientError(err) {
				level.Warn(d.logger).Log("msg", "push failed", "err", err)
			}
			apierror.WriteText(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// recoverPush turns a panic while handling a push into a 500, logged with
// the workspace and counted. The request's in-flight ticket is freed: a
// few thousand panics would otherwise wedge the distributor at 503. Its
// buffers go back to the pool only through the request's clean-up, which
// runs once no replica uses them (on the single-ingester path, as the panic
// unwinds push); if that never runs, the garbage collector takes them.
// Panics of the replicas' pushes, on DoBatch's goroutines, are recovered
// by pushTo.
func (d *Distributor) recoverPush(w http.ResponseWriter, r *http.Request, t *ticket) {
	p := recover()
	if p == nil {
		return
	}
	t.done()
	if p == http.ErrAbortHandler {
		panic(p) // the server's own way to abort a response
	}
	d.panicked(r.Context(), p, "msg", "panic while handling a push")
	apierror.WriteText(w, apierror.New(apierror.Internal, apierror.IDInternal, "internal error while handling the write request; retry it"))
}

// panicked counts and logs a recovered panic with the workspace of ctx and
// the stack.
func (d *Distributor) panicked(ctx context.Context, p any, keyvals ...any) {
	d.metrics.panics.Inc()
	ws, _ := tenant.ID(ctx)
	level.Error(d.logger).Log(append(keyvals, "workspace", ws, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))...)
}

func (d *Distributor) refuse(w http.ResponseWriter, err error, reason string) {
	d.metrics.rejectedRequests.WithLabelValues(reason).Inc()
	apierror.WriteText(w, err)
}

func rejectReason(err error) string {
	switch e := apierror.From(err); {
	case e.ID == apierror.IDDistributorMaxInflightBytes:
		return "max_inflight_push_requests_bytes"
	case e.Cause == apierror.TooLarge:
		return "too_large"
	case e.Cause == apierror.UnsupportedMediaType:
		return "unsupported_media_type"
	default:
		return "invalid_body"
	}
}

// decode checks the headers of a remote-write request and decodes its body
// into bufs.req. Before each allocation it takes the memory from the
// request's ticket.
func (d *Distributor) decode(r *http.Request, bufs *pushBuffers, t *ticket) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != contentTypeProtobuf {
			return apierror.New(apierror.UnsupportedMediaType, apierror.IDUnsupportedContentType,
				"unsupported Content-Type %q: remote write expects %s", ct, contentTypeProtobuf)
		}
		switch params["proto"] {
		case "", protoParamV1:
		case protoParamV2:
			return apierror.New(apierror.UnsupportedMediaType, apierror.IDUnsupportedContentType,
				"remote write 2.0 (%s) is not accepted yet; send remote write 1.0 (%s)", protoParamV2, protoParamV1)
		default:
			return apierror.New(apierror.UnsupportedMediaType, apierror.IDUnsupportedContentType,
				"unknown remote-write message type %q", params["proto"])
		}
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "snappy" {
		return apierror.New(apierror.UnsupportedMediaType, apierror.IDUnsupportedContentType,
			"unsupported Content-Encoding %q: remote write 1.0 bodies are snappy-compressed", enc)
	}
	limit := d.cfg.MaxRequestSizeBytes
	tooLarge := func(size int64) error {
		return apierror.New(apierror.TooLarge, apierror.IDRequestTooLarge,
			"request body too large: %d bytes, limit %d bytes (-distributor.max-request-size-bytes)", size, limit)
	}
	if r.ContentLength > int64(limit) {
		return tooLarge(r.ContentLength)
	}
	n, err := bufs.body.ReadFrom(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		return apierror.New(apierror.BadData, apierror.IDInvalidRequestBody, "cannot read request body: %v", err)
	}
	if n > int64(limit) {
		return tooLarge(n)
	}
	compressed := bufs.body.Bytes()
	size, err := snappy.DecodedLen(compressed)
	if err != nil {
		return apierror.New(apierror.BadData, apierror.IDInvalidRequestBody, "request body is not valid snappy-compressed data: %v", err)
	}
	if size > d.cfg.MaxDecompressedSizeBytes {
		return apierror.New(apierror.TooLarge, apierror.IDRequestTooLarge,
			"decompressed request too large: %d bytes, limit %d bytes (-distributor.max-decompressed-request-size-bytes)", size, d.cfg.MaxDecompressedSizeBytes)
	}
	if err := t.reserve(len(compressed) + size); err != nil {
		return err
	}
	if cap(bufs.decoded) < size {
		bufs.decoded = make([]byte, size)
	}
	decoded, err := snappy.Decode(bufs.decoded[:cap(bufs.decoded)], compressed)
	if err != nil {
		return apierror.New(apierror.BadData, apierror.IDInvalidRequestBody, "request body is not valid snappy-compressed data: %v", err)
	}
	if err := remotewrite.DecodeWithRaw(decoded, &bufs.req, &bufs.raw, t.reserve); err != nil {
		if apierror.StatusOf(err) == http.StatusServiceUnavailable {
			return err
		}
		return apierror.New(apierror.BadData, apierror.IDInvalidRequestBody, "request body is not a valid remote-write protobuf message: %v", err)
	}
	return nil
}
