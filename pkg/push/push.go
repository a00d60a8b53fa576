// Package push is the write path's contract between the decoders of the
// wire formats (remote write 1.0 today; 2.0 and OTLP beside it) and what
// stores their requests: one owned request type.
package push

import (
	"sync/atomic"

	"github.com/prometheus/prometheus/prompb"
)

// Request is one write request, decoded. It has one holder at a time: its
// maker (a decoder) fills it and hands it to a Pusher, which owns it from
// then on and calls Release exactly once, when no goroutine reads it any
// more — which may be after Push returned, while a slow replica is still
// being written.
//
// The series, metadata and raw bytes may alias buffers that the maker
// reuses once the request is released: nothing may keep a string, a slice
// or a byte of the request past Release. A store that keeps labels (an
// ingester's head) copies them; one that sends the request on (a gRPC
// client) finishes sending first.
//
// A holder may change the series in place (drop labels, samples or whole
// series, reorder them); when it changes series i it must set Raw[i] to
// nil, since those bytes no longer encode it.
type Request struct {
	prompb.WriteRequest
	// Raw, when not nil, holds the encoded bytes of each series as they
	// arrived (a remote write 1.0 TimeSeries message): Raw[i] encodes
	// Timeseries[i], or is nil when it does not (any more). A series sent
	// on unchanged is sent as those bytes, without encoding it again.
	Raw [][]byte

	reserve  func(int) error
	release  func()
	released atomic.Bool
}

// NewRequest returns a request over req's series and metadata and their raw
// bytes (raw may be nil). reserve, which may be nil, takes memory a holder
// adds to the request from its maker's budget (see Reserve); release,
// which may be nil, is called once by Release, to give the buffers and
// that memory back to their maker.
func NewRequest(req prompb.WriteRequest, raw [][]byte, reserve func(int) error, release func()) *Request {
	return &Request{WriteRequest: req, Raw: raw, reserve: reserve, release: release}
}

// Reserve counts n more bytes a holder keeps for the request until it is
// released (series it rewrote, say) against the budget the request's
// memory comes from; an error (the budget is spent) means the holder may
// not allocate them.
func (r *Request) Reserve(n int) error {
	if r.reserve == nil {
		return nil
	}
	return r.reserve(n)
}

// Release hands the request's memory back to its maker. Only the first call
// counts: a clean-up and a recovered panic may both call it.
func (r *Request) Release() {
	if r.released.CompareAndSwap(false, true) && r.release != nil {
		r.release()
	}
}

// Samples counts the request's samples and histograms.
func (r *Request) Samples() int {
	n := 0
	for i := range r.Timeseries {
		n += len(r.Timeseries[i].Samples) + len(r.Timeseries[i].Histograms)
	}
	return n
}

// Exemplars counts the request's exemplars.
func (r *Request) Exemplars() int {
	n := 0
	for i := range r.Timeseries {
		n += len(r.Timeseries[i].Exemplars)
	}
	return n
}
