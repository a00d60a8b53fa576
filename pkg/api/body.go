package api

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
	"github.com/vigil-metrics/vigil/pkg/inflight"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
)

// Reading request bodies at the front door. A SigV4 signature may cover the
// body's hash, so the body of a signed request is read before its handler
// runs, and unless the request declares its payload's hash (few clients
// do), before its signature is known to be good: anyone who knows an access
// key ID can make the process read a body. What callers can make the
// process hold is bounded four ways:
//   - each route reads at most its own request-size limit (remote write's
//     -distributor.max-request-size-bytes, 1 MB for the other routes), and a
//     larger Content-Length is refused before anything is read;
//   - a buffer grows as bytes arrive (16 KB first, then doubling), never to
//     the declared length ahead of them;
//   - every byte held comes out of the process's budget of request memory
//     (-distributor.instance-limits.max-inflight-push-requests-bytes),
//     shared with the distributor: when it is spent, requests get 503 and
//     senders retry;
//   - the bodies read before their signature verified hold at most an
//     eighth of that budget per access key (at least one body of the
//     route's largest size): a caller who knows one key ID but not its
//     secret cannot take the budget from the other keys.

// defaultBodyLimit bounds the bodies of routes that set no limit of their
// own. AMP quota: request size (ingest or query) 1 MB.
const defaultBodyLimit = 1 << 20

// firstRead is the buffer a body is first read into; it doubles as bytes
// arrive.
const firstRead = 16 << 10

// Buffers kept for the next request: at most pooledBodies, each at most
// maxPooledBody (a remote write's 1 MB and a little).
const (
	pooledBodies  = 16
	maxPooledBody = 2 << 20
)

// unverifiedShare is the fraction of the budget one access key's unverified
// bodies may hold.
const unverifiedShare = 8

// chunkedAllowance is how much larger than its route's limit an
// aws-chunked body may be on the wire: the chunk headers (about 90 bytes a
// chunk, chunks of 8 KB or more in practice) are not the request's data.
func chunkedAllowance(limit int) int { return limit/16 + 4<<10 }

// errInflightBytes refuses a request whose body would take the process's
// request memory over its budget.
func errInflightBytes(limit int64) error {
	return apierror.New(apierror.Unavailable, apierror.IDInflightBodyBytes,
		"the request has been rejected because the request bodies in flight exceeded the allowed size (limit: %d bytes, -distributor.instance-limits.max-inflight-push-requests-bytes); retry later", limit)
}

// errUnverifiedBytes refuses a request whose body, not yet known to be
// signed by the key it names, would take that key over its share.
func errUnverifiedBytes(limit int64) error {
	return apierror.New(apierror.Unavailable, apierror.IDInflightBodyBytes,
		"the request has been rejected because the request bodies in flight for this access key, read before their signatures could be checked, exceeded the allowed size (limit: %d bytes, an eighth of -distributor.instance-limits.max-inflight-push-requests-bytes); retry later, or sign the payload's hash in X-Amz-Content-Sha256", limit)
}

func errBodyTooLarge(limit int) error {
	return apierror.New(apierror.TooLarge, apierror.IDRequestTooLarge, "request body too large: over the limit of %d bytes", limit)
}

// bodyReader reads request bodies into buffers kept for reuse, taking their
// memory from a budget.
type bodyReader struct {
	budget *inflight.Budget
	held   atomic.Int64 // this reader's share of the budget
	pool   *remotewrite.FreeList[*body]

	mu         sync.Mutex
	unverified map[string]int64 // bytes held by bodies not verified yet, by access key
}

// body is one request's body as read, and the memory it took.
type body struct {
	buf      []byte
	taken    int    // bytes taken from the budget
	key      string // the access key whose unverified share holds taken ("": none)
	keyLimit int64  // the most that key's unverified bodies may hold
}

func newBodyReader(budget *inflight.Budget) *bodyReader {
	return &bodyReader{
		budget:     budget,
		pool:       remotewrite.NewFreeList(pooledBodies, func() *body { return new(body) }),
		unverified: map[string]int64{},
	}
}

// read reads r's body, at most limit bytes (with an allowance for the
// chunk headers of an aws-chunked body). unverifiedKey, when not empty, is
// the access key the body counts against until verified is called. The
// caller releases the body once nothing uses its bytes.
func (br *bodyReader) read(w http.ResponseWriter, r *http.Request, limit int, unverifiedKey string) (*body, error) {
	if r.Header.Get("X-Amz-Content-Sha256") == auth.StreamingPayload {
		limit += chunkedAllowance(limit)
	}
	if r.ContentLength > int64(limit) {
		return nil, errBodyTooLarge(limit)
	}
	b := br.pool.Get()
	b.buf, b.key = b.buf[:0], unverifiedKey
	// A key's share holds at least one body of the route's largest size,
	// whatever the budget.
	b.keyLimit = max(br.budget.Limit()/unverifiedShare, int64(limit)+1)
	if err := br.fill(b, http.MaxBytesReader(w, r.Body, int64(limit)), limit); err != nil {
		br.release(b)
		return nil, err
	}
	return b, nil
}

// fill reads src into b.buf, growing it only as bytes arrive, and takes
// from the budget the memory each read may fill before making it.
func (br *bodyReader) fill(b *body, src io.Reader, limit int) error {
	for {
		if len(b.buf) == cap(b.buf) {
			next := min(max(2*cap(b.buf), firstRead), limit+1)
			if next <= cap(b.buf) {
				return errBodyTooLarge(limit)
			}
			if err := br.take(b, next); err != nil {
				return err
			}
			grown := make([]byte, len(b.buf), next)
			copy(grown, b.buf)
			b.buf = grown
		}
		// A pooled buffer is filled a window at a time: its capacity is
		// not this request's until bytes arrive for it.
		end := min(cap(b.buf), len(b.buf)+max(len(b.buf), firstRead))
		if err := br.take(b, end); err != nil {
			return err
		}
		n, err := src.Read(b.buf[len(b.buf):end])
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

// take makes b's share of the budget (and of its key's unverified share)
// size bytes.
func (br *bodyReader) take(b *body, size int) error {
	more := size - b.taken
	if more <= 0 {
		return nil
	}
	if b.key != "" {
		br.mu.Lock()
		if br.budget.Limit() > 0 && br.unverified[b.key]+int64(more) > b.keyLimit {
			br.mu.Unlock()
			return errUnverifiedBytes(b.keyLimit)
		}
		br.unverified[b.key] += int64(more)
		br.mu.Unlock()
	}
	if !br.budget.Take(more) {
		br.giveUnverified(b, more)
		return errInflightBytes(br.budget.Limit())
	}
	br.held.Add(int64(more))
	b.taken = size
	return nil
}

// giveUnverified returns n bytes of b's key's unverified share.
func (br *bodyReader) giveUnverified(b *body, n int) {
	if b.key == "" || n <= 0 {
		return
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if left := br.unverified[b.key] - int64(n); left > 0 {
		br.unverified[b.key] = left
	} else {
		delete(br.unverified, b.key)
	}
}

// verified moves the body out of its key's unverified share: its signature
// checked out. It stays in the budget until released.
func (br *bodyReader) verified(b *body) {
	br.giveUnverified(b, b.taken)
	b.key = ""
}

// release gives the body's memory back and keeps its buffer for the next
// request, unless it is large.
func (br *bodyReader) release(b *body) {
	br.giveUnverified(b, b.taken)
	br.budget.Give(b.taken)
	br.held.Add(-int64(b.taken))
	b.taken, b.key = 0, ""
	if cap(b.buf) > maxPooledBody {
		b.buf = nil
	}
	b.buf = b.buf[:0]
	br.pool.Put(b)
}
