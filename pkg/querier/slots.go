package querier

import (
	"context"
	"sync"
	"time"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// workspaceSlots bounds the queries of each workspace a querier evaluates
// at once, below the querier's own slots: one workspace's heavy queries
// leave slots to the others. A query waits for its workspace's slot before
// it takes one of the querier's, so a waiting query holds none of them.
type workspaceSlots struct {
	mu    sync.Mutex
	slots map[string]*wsSlots
}

type wsSlots struct {
	ch    chan struct{}
	users int // queries holding or waiting for a slot
}

func newWorkspaceSlots() *workspaceSlots { return &workspaceSlots{slots: map[string]*wsSlots{}} }

// acquire takes one of the workspace's limit slots (limit 0: no bound),
// waiting until wait fires or ctx ends. The release function it returns
// gives the slot back.
func (s *workspaceSlots) acquire(ctx context.Context, ws string, limit int, wait <-chan time.Time) (func(), error) {
	if limit <= 0 {
		return func() {}, nil
	}
	s.mu.Lock()
	e := s.slots[ws]
	if e == nil || (e.users == 0 && cap(e.ch) != limit) {
		e = &wsSlots{ch: make(chan struct{}, limit)}
		s.slots[ws] = e
	}
	e.users++
	s.mu.Unlock()
	done := func() {
		s.mu.Lock()
		if e.users--; e.users == 0 && s.slots[ws] == e {
			delete(s.slots, ws)
		}
		s.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; done() }, nil
	case <-wait:
		done()
		return nil, apierror.New(apierror.TooManyRequests, apierror.IDWorkspaceQueryConcurrency,
			"too many concurrent queries of this workspace: no slot of its %d free within %s (-querier.max-concurrent-queries-per-workspace)", limit, slotWait)
	case <-ctx.Done():
		done()
		return nil, apierror.New(apierror.Unavailable, "", "request cancelled while waiting for a query slot of its workspace")
	}
}
