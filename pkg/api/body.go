package api

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/inflight"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
)

// Reading request bodies at the front door. A SigV4 signature may cover the
// body's hash, so the body of a signed request is read before its handler
// runs, and unless the request declares its payload's hash (few clients
// do), before its signature is known to be good: anyone who knows an access
// key ID can make the process read a body. What callers can make the
// process hold is bounded this way:
//   - each route reads at most its own request-size limit (remote write's
//     -distributor.max-request-size-bytes, 1 MB for the other routes), and a
//     larger Content-Length is refused before anything is read;
//   - a buffer grows as bytes arrive (16 KB first, then doubling), never to
//     the declared length ahead of them;
//   - every byte held comes out of the process's budget of request memory
//     (-distributor.instance-limits.max-inflight-push-requests-bytes),
//     shared with the distributor: when it is spent, requests get 503 and
//     senders retry;
//   - while they are read, the bodies of one access key hold at most an
//     eighth of that budget, those read before their signature verified
//     and those read after apart (at least one body of the route's size
//     each): a caller who knows a key ID but not its secret cannot take
//     the budget from the other keys, nor from the key's own signed
//     payloads;
//   - the bodies read before their signature verified hold at most half of
//     the budget together, whatever the keys: the rest stays for verified
//     requests and the distributor's decoding.

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

// keyShare is the fraction of the budget the bodies of one access key may
// hold while they are read (unverified and verified apart); unverifiedShare
// the fraction all unverified bodies together may.
const (
	keyShare        = 8
	unverifiedShare = 2
)

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

// errKeyBytes refuses a request whose body would take its access key's
// bodies being read over their share.
func errKeyBytes(limit int64, verified bool) error {
	if verified {
		return apierror.New(apierror.Unavailable, apierror.IDInflightBodyBytes,
			"the request has been rejected because the request bodies being read for this access key exceeded the allowed size (limit: %d bytes, an eighth of -distributor.instance-limits.max-inflight-push-requests-bytes); retry later", limit)
	}
	return apierror.New(apierror.Unavailable, apierror.IDInflightBodyBytes,
		"the request has been rejected because the request bodies in flight for this access key, read before their signatures could be checked, exceeded the allowed size (limit: %d bytes, an eighth of -distributor.instance-limits.max-inflight-push-requests-bytes); retry later, or sign the payload's hash in X-Amz-Content-Sha256", limit)
}

// errUnverifiedBytes refuses a request whose body, not yet known to be
// signed, would take all such bodies over their share.
func errUnverifiedBytes(limit int64) error {
	return apierror.New(apierror.Unavailable, apierror.IDInflightBodyBytes,
		"the request has been rejected because the request bodies in flight read before their signatures could be checked exceeded the allowed size (limit: %d bytes, half of -distributor.instance-limits.max-inflight-push-requests-bytes); retry later, or sign the payload's hash in X-Amz-Content-Sha256", limit)
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
	reading    map[share]int64 // bytes held by the bodies being read, by key and kind
	unverified int64           // of which read before their signature verified
}

// share is one access key's bodies of one kind.
type share struct {
	key      string
	verified bool
}

// body is one request's body as read, and the memory it took.
type body struct {
	buf   []byte
	taken int // bytes taken from the budget
	// share holds taken while the body is read (key "": none), at most
	// shareLimit.
	share      share
	shareLimit int64
}

func newBodyReader(budget *inflight.Budget) *bodyReader {
	return &bodyReader{
		budget:  budget,
		pool:    remotewrite.NewFreeList(pooledBodies, func() *body { return new(body) }),
		reading: map[share]int64{},
	}
}

// read reads r's body, at most limit bytes (with an allowance for the
// chunk headers of an aws-chunked body). With an access key, the body
// counts against that key's share (and, not verified, against all
// unverified bodies') until done is called. The caller releases the body
// once nothing uses its bytes.
func (br *bodyReader) read(w http.ResponseWriter, r *http.Request, limit int, key string, verified, chunked bool) (*body, error) {
	if chunked {
		limit += chunkedAllowance(limit)
	}
	if r.ContentLength > int64(limit) {
		return nil, errBodyTooLarge(limit)
	}
	b := br.pool.Get()
	b.buf, b.share = b.buf[:0], share{key: key, verified: verified}
	// A key's share holds at least one body of the route's largest size,
	// whatever the budget.
	b.shareLimit = max(br.budget.Limit()/keyShare, int64(limit)+1)
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
		end := min(cap(b.buf), len(b.buf)+max(len(b.buf), firstRead), limit+1)
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

// take makes b's share of the budget (and of its key's share, and of the
// unverified bodies' share) size bytes.
func (br *bodyReader) take(b *body, size int) error {
	more := size - b.taken
	if more <= 0 {
		return nil
	}
	if b.share.key != "" {
		if err := br.takeShare(b, int64(more)); err != nil {
			return err
		}
	}
	if !br.budget.Take(more) {
		br.giveShare(b, int64(more))
		return errInflightBytes(br.budget.Limit())
	}
	br.held.Add(int64(more))
	b.taken = size
	return nil
}

func (br *bodyReader) takeShare(b *body, n int64) error {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.budget.Limit() <= 0 {
		br.reading[b.share] += n
		return nil
	}
	if br.reading[b.share]+n > b.shareLimit {
		return errKeyBytes(b.shareLimit, b.share.verified)
	}
	if !b.share.verified {
		limit := max(br.budget.Limit()/unverifiedShare, b.shareLimit)
		if br.unverified+n > limit {
			return errUnverifiedBytes(limit)
		}
		br.unverified += n
	}
	br.reading[b.share] += n
	return nil
}

// giveShare returns n bytes of b's shares.
func (br *bodyReader) giveShare(b *body, n int64) {
	if b.share.key == "" || n <= 0 {
		return
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if !b.share.verified {
		br.unverified -= n
	}
	if left := br.reading[b.share] - n; left > 0 {
		br.reading[b.share] = left
	} else {
		delete(br.reading, b.share)
	}
}

// done ends the body's read: its signature checked out, it leaves its
// key's share and stays in the budget until released.
func (br *bodyReader) done(b *body) {
	br.giveShare(b, int64(b.taken))
	b.share = share{}
}

// release gives the body's memory back and keeps its buffer for the next
// request, unless it is large.
func (br *bodyReader) release(b *body) {
	br.giveShare(b, int64(b.taken))
	br.budget.Give(b.taken)
	br.held.Add(-int64(b.taken))
	b.taken, b.share = 0, share{}
	if cap(b.buf) > maxPooledBody {
		b.buf = nil
	}
	b.buf = b.buf[:0]
	br.pool.Put(b)
}
