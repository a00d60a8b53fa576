package seriespb

import (
	"context"
	"errors"
	"sync"
)

// errQuerierClosed is the error of a stream opened after its querier closed.
var errQuerierClosed = errors.New("querier is closed")

// Streams are the streams a remote querier opened: each lives until the
// querier closes, or until the context of the select that opened it ends,
// whichever comes first.
type Streams struct {
	mu      sync.Mutex
	cancels []context.CancelFunc
	closed  bool
}

// Context returns the context of a new stream: parent (the querier's, with
// the workspace in its metadata), ended also when ctx ends or the querier
// closes. It fails once the querier closed.
func (s *Streams) Context(parent, ctx context.Context) (context.Context, error) {
	streamCtx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(ctx, cancel)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		stop()
		cancel()
		return nil, errQuerierClosed
	}
	s.cancels = append(s.cancels, func() { stop(); cancel() })
	return streamCtx, nil
}

// Close ends every stream.
func (s *Streams) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cancel := range s.cancels {
		cancel()
	}
	s.cancels, s.closed = nil, true
}
