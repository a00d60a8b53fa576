package api

import (
	"context"
	"mime"
	"net/http"
	"sync/atomic"

	"github.com/go-kit/log/level"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/inflight"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
	"github.com/vigil-metrics/vigil/pkg/push"
)

// Pusher stores write requests: the distributor's write path.
type Pusher interface {
	// Push takes req over, whatever it returns: it calls req.Release once
	// nothing reads the request any more, which may be after Push returned
	// (see push.Request for what may be kept). The workspace is in ctx.
	Push(ctx context.Context, req *push.Request) error
}

// PushLimits bound the write requests of a process: each as sent and as
// decompressed, and how many are in flight at once.
type PushLimits struct {
	MaxRequestSizeBytes      int // -distributor.max-request-size-bytes
	MaxDecompressedSizeBytes int // -distributor.max-decompressed-request-size-bytes
	// MaxInflightPushRequests bounds the requests from their arrival until
	// every replica answered (-distributor.instance-limits.max-inflight-push-requests; 0: none).
	MaxInflightPushRequests int
}

// Remote-write 1.0 wire details.
const (
	contentTypeProtobuf = "application/x-protobuf"
	protoParamV1        = "prometheus.WriteRequest"
	protoParamV2        = "io.prometheus.write.v2.Request"
)

// rw1Decoder decodes Prometheus remote write 1.0 (snappy-compressed
// protobuf) into buffers it keeps for reuse, taking their memory from the
// process's budget of request memory until the request is released.
type rw1Decoder struct {
	limits   PushLimits
	budget   *inflight.Budget
	buffers  *remotewrite.FreeList[*rw1Buffers]
	held     *atomic.Int64 // bytes the requests in flight took from the budget
	requests *atomic.Int64 // requests in flight, from arrival until released
}

// rw1Buffers are the reusable buffers of one remote-write request.
type rw1Buffers struct {
	d       *rw1Decoder
	decoded []byte
	req     prompb.WriteRequest
	raw     [][]byte // the encoded bytes of every series of req, in decoded
	taken   int      // bytes taken from the budget
}

// pooledRequests is how many requests' buffers are kept for reuse, about
// the requests a process decodes at once.
const pooledRequests = 16

// maxPooledBuffers bounds the buffers kept for reuse: those of a request
// larger than this go to the garbage collector, so that one large request
// does not pin its memory in the pool.
const maxPooledBuffers = 8 << 20

func newRW1Decoder(limits PushLimits, budget *inflight.Budget, held, requests *atomic.Int64) *rw1Decoder {
	d := &rw1Decoder{limits: limits, budget: budget, held: held, requests: requests}
	d.buffers = remotewrite.NewFreeList(pooledRequests, func() *rw1Buffers { return &rw1Buffers{d: d} })
	return d
}

const errMaxInflightRequests = "the write request has been rejected because the distributor exceeded the allowed number of inflight push requests (limit: %d, -distributor.instance-limits.max-inflight-push-requests); retry later"

// start counts a request in, unless too many are in flight.
func (d *rw1Decoder) start() error {
	n := d.requests.Add(1)
	if max := int64(d.limits.MaxInflightPushRequests); max > 0 && n > max {
		d.requests.Add(-1)
		return apierror.New(apierror.Unavailable, apierror.IDDistributorMaxInflightRequests, errMaxInflightRequests, max)
	}
	return nil
}

// done counts a request out.
func (d *rw1Decoder) done() { d.requests.Add(-1) }

// reserve takes n more bytes of the budget for the request.
func (b *rw1Buffers) reserve(n int) error {
	if !b.d.budget.Take(n) {
		return apierror.New(apierror.Unavailable, apierror.IDDistributorMaxInflightBytes,
			"the write request has been rejected because the requests in flight exceeded the allowed size (limit: %d bytes, -distributor.instance-limits.max-inflight-push-requests-bytes); retry later", b.d.budget.Limit())
	}
	b.taken += n
	b.d.held.Add(int64(n))
	return nil
}

// release gives the request's memory back and keeps its buffers for the
// next request, unless they grew too large. The series slices keep their
// capacity (and their label, sample, exemplar and histogram slices theirs);
// the decoder overwrites every element it reuses.
func (b *rw1Buffers) release() {
	b.d.budget.Give(b.taken)
	b.d.held.Add(-int64(b.taken))
	b.taken = 0
	if cap(b.decoded)+remotewrite.Retained(&b.req)+24*cap(b.raw) > maxPooledBuffers {
		return
	}
	b.req.Timeseries = b.req.Timeseries[:0]
	b.req.Metadata = b.req.Metadata[:0]
	clear(b.raw) // no stale reference into the decoded buffer
	b.raw = b.raw[:0]
	b.d.buffers.Put(b)
}

// decode decodes a remote-write body (as sent: snappy-compressed). The
// request returned is the caller's to hand to a Pusher; its release gives
// its memory back and counts it out of the requests in flight.
func (d *rw1Decoder) decode(compressed []byte) (*push.Request, error) {
	b := d.buffers.Get()
	ok := false
	defer func() {
		if !ok {
			b.release()
		}
	}()
	size, err := snappy.DecodedLen(compressed)
	if err != nil {
		return nil, apierror.New(apierror.BadData, apierror.IDInvalidRequestBody, "request body is not valid snappy-compressed data: %v", err)
	}
	if size > d.limits.MaxDecompressedSizeBytes {
		return nil, apierror.New(apierror.TooLarge, apierror.IDRequestTooLarge,
			"decompressed request too large: %d bytes, limit %d bytes (-distributor.max-decompressed-request-size-bytes)", size, d.limits.MaxDecompressedSizeBytes)
	}
	if err := b.reserve(size); err != nil {
		return nil, err
	}
	if cap(b.decoded) < size {
		b.decoded = make([]byte, size)
	}
	decoded, err := snappy.Decode(b.decoded[:cap(b.decoded)], compressed)
	if err != nil {
		return nil, apierror.New(apierror.BadData, apierror.IDInvalidRequestBody, "request body is not valid snappy-compressed data: %v", err)
	}
	if err := remotewrite.DecodeWithRaw(decoded, &b.req, &b.raw, b.reserve); err != nil {
		if apierror.StatusOf(err) == http.StatusServiceUnavailable {
			return nil, err
		}
		return nil, apierror.New(apierror.BadData, apierror.IDInvalidRequestBody, "request body is not a valid remote-write protobuf message: %v", err)
	}
	ok = true
	return push.NewRequest(b.req, b.raw, b.reserve, func() {
		b.release()
		d.done()
	}), nil
}

// checkRW1Headers refuses what is not remote write 1.0.
func checkRW1Headers(r *http.Request) error {
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
	return nil
}

// pushHandler serves remote write for the workspace in the request
// context: it counts the request in, reads the body (unless the front door
// read it to check its signature) into memory taken from the budget as it
// arrives, decodes it and hands the request to p.
func (a *API) pushHandler(p Pusher, dec *rw1Decoder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(err error) {
			a.pushRejected.WithLabelValues(rejectReason(err)).Inc()
			apierror.WriteText(w, err)
		}
		if err := checkRW1Headers(r); err != nil {
			refuse(err)
			return
		}
		if err := dec.start(); err != nil {
			refuse(err)
			return
		}
		body, _ := r.Context().Value(bodyKey{}).([]byte)
		if body == nil {
			b, err := a.bodies.read(w, r, dec.limits.MaxRequestSizeBytes, "", true, false)
			if err != nil {
				dec.done()
				refuse(err)
				return
			}
			defer a.bodies.release(b) // decoded into buffers of the request's own
			body = b.buf
		}
		req, err := dec.decode(body)
		if err != nil {
			dec.done()
			refuse(err)
			return
		}
		if err := p.Push(r.Context(), req); err != nil {
			if !apierror.IsClientError(err) {
				level.Warn(a.logger).Log("msg", "push failed", "err", err)
			}
			apierror.WriteText(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func rejectReason(err error) string {
	switch e := apierror.From(err); {
	case e.ID == apierror.IDDistributorMaxInflightRequests:
		return "max_inflight_push_requests"
	case e.ID == apierror.IDDistributorMaxInflightBytes, e.ID == apierror.IDInflightBodyBytes:
		return "max_inflight_push_requests_bytes"
	case e.Cause == apierror.TooLarge:
		return "too_large"
	case e.Cause == apierror.UnsupportedMediaType:
		return "unsupported_media_type"
	default:
		return "invalid_body"
	}
}
