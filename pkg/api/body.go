package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/inflight"
)

// Reading request bodies at the front door. A SigV4 signature may cover the
// body's hash, so the body of a signed request is read before its handler
// runs. What a caller can make the process hold is bounded three ways:
//   - each route reads at most its own request-size limit (remote write's
//     -distributor.max-request-size-bytes, 1 MB for the other routes), and a
//     larger Content-Length is refused before anything is read;
//   - the buffer grows as bytes arrive, never to the declared length ahead
//     of them: a connection that sends headers only holds nothing;
//   - every byte held comes out of the process's budget of request memory
//     (-distributor.instance-limits.max-inflight-push-requests-bytes), shared
//     with the distributor: when it is spent, requests get 503 and senders
//     retry.

// defaultBodyLimit bounds the bodies of routes that set no limit of their
// own. AMP quota: request size (ingest or query) 1 MB.
const defaultBodyLimit = 1 << 20

// firstRead is the buffer a body is first read into; it doubles as bytes
// arrive.
const firstRead = 16 << 10

// maxPooledBody bounds the buffers kept for the next request.
const maxPooledBody = 4 << 20

// chunkedAllowance is how much larger than its route's limit an
// aws-chunked body may be on the wire: the chunk headers (about 90 bytes a
// chunk, chunks of 8 KB or more in practice) are not the request's data.
func chunkedAllowance(limit int) int { return limit/16 + 4<<10 }

// errInflightBytes refuses a request whose body would take the process's
// request memory over its budget.
func errInflightBytes(limit int64) error {
	return apierror.New(apierror.Unavailable, apierror.IDDistributorMaxInflightBytes,
		"the request has been rejected because the requests in flight exceeded the allowed size of request bodies held in memory (limit: %d bytes, -distributor.instance-limits.max-inflight-push-requests-bytes); retry later", limit)
}

func errBodyTooLarge(limit int) error {
	return apierror.New(apierror.TooLarge, apierror.IDRequestTooLarge, "request body too large: over the limit of %d bytes", limit)
}

// bodyReader reads request bodies into pooled buffers, taking their memory
// from a budget.
type bodyReader struct {
	budget *inflight.Budget
	held   atomic.Int64 // this reader's share of the budget
	pool   sync.Pool    // *body
}

// body is one request's body as read, and the memory it took.
type body struct {
	buf   []byte
	taken int // bytes taken from the budget: cap(buf) once read
}

func newBodyReader(budget *inflight.Budget) *bodyReader {
	return &bodyReader{budget: budget, pool: sync.Pool{New: func() any { return new(body) }}}
}

// read reads r's body, at most limit bytes (with an allowance for the
// chunk headers of an aws-chunked body). The caller releases the body once
// nothing uses its bytes.
func (br *bodyReader) read(w http.ResponseWriter, r *http.Request, limit int) (*body, error) {
	if isChunked(r) {
		limit += chunkedAllowance(limit)
	}
	if r.ContentLength > int64(limit) {
		return nil, errBodyTooLarge(limit)
	}
	b := br.pool.Get().(*body)
	b.buf = b.buf[:0]
	if err := br.fill(b, http.MaxBytesReader(w, r.Body, int64(limit)), limit); err != nil {
		br.release(b)
		return nil, err
	}
	return b, nil
}

// fill reads src into b.buf, growing it (and taking its memory from the
// budget) only as bytes arrive.
func (br *bodyReader) fill(b *body, src io.Reader, limit int) error {
	for {
		if len(b.buf) == cap(b.buf) {
			next := min(max(2*cap(b.buf), firstRead), limit+1)
			if next <= cap(b.buf) {
				return errBodyTooLarge(limit)
			}
			if !br.take(b, next) {
				return errInflightBytes(br.budget.Limit())
			}
			grown := make([]byte, len(b.buf), next)
			copy(grown, b.buf)
			b.buf = grown
		} else if !br.take(b, cap(b.buf)) { // a pooled buffer
			return errInflightBytes(br.budget.Limit())
		}
		n, err := src.Read(b.buf[len(b.buf):cap(b.buf)])
		b.buf = b.buf[:len(b.buf)+n]
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return errBodyTooLarge(limit)
			}
			return apierror.New(apierror.BadData, apierror.IDInvalidRequestBody, "cannot read request body: %v", err)
		}
	}
}

// take makes b's share of the budget size bytes.
func (br *bodyReader) take(b *body, size int) bool {
	if size <= b.taken {
		return true
	}
	if !br.budget.Take(size - b.taken) {
		return false
	}
	br.held.Add(int64(size - b.taken))
	b.taken = size
	return true
}

// release gives the body's memory back and keeps its buffer for the next
// request, unless it is large.
func (br *bodyReader) release(b *body) {
	br.budget.Give(b.taken)
	br.held.Add(-int64(b.taken))
	b.taken = 0
	if cap(b.buf) > maxPooledBody {
		b.buf = nil
	}
	b.buf = b.buf[:0]
	br.pool.Put(b)
}

// isChunked tells whether the body is aws-chunked (its data length
// declared apart).
func isChunked(r *http.Request) bool {
	_, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
	return err == nil
}
