package frontend

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/grafana/dskit/httpgrpc"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// QueueLimits are the per-workspace limits the fair queue applies.
type QueueLimits interface {
	// MaxQueriersPerWorkspace is how many of the connected queriers may
	// take the workspace's requests (0: all).
	MaxQueriersPerWorkspace(workspace string) int
	// MaxConcurrentQueries is how many of the workspace's requests one
	// querier evaluates at once (0: no bound): the queue hands it no more,
	// so that its workers stay free for other workspaces.
	MaxConcurrentQueries(workspace string) int
}

// request is one request waiting in, or taken from, the queue.
type request struct {
	ctx       context.Context
	workspace string
	// query is the client request r is part of (the legs of a split range
	// query share it): the outstanding limit counts queries, not legs.
	query    uint64
	req      *httpgrpc.HTTPRequest
	enqueued time.Time
	// done receives the answer, once; buffered so that the sender never
	// blocks on a caller that went away.
	done chan result
}

type result struct {
	resp *httpgrpc.HTTPResponse
	err  error
}

// queue is one FIFO per workspace; queriers take from the workspaces in
// turn (round robin), each from the workspaces its shuffle shard gives it.
type queue struct {
	maxOutstanding int
	limits         QueueLimits
	metrics        *metrics

	mu         sync.Mutex
	workspaces map[string][]*request
	// queries counts, per workspace, the queued requests of each query.
	queries  map[string]map[uint64]int
	order    []string // workspaces with queued requests, in arrival order
	queriers map[string]*querierState
	// changed is closed and replaced whenever a querier might find work.
	changed chan struct{}
	stopped bool
}

type querierState struct {
	streams  int
	next     int            // where its round robin resumes in order
	inflight map[string]int // requests taken, by workspace
}

func newQueue(maxOutstanding int, limits QueueLimits, m *metrics) *queue {
	return &queue{
		maxOutstanding: maxOutstanding, limits: limits, metrics: m,
		workspaces: map[string][]*request{}, queries: map[string]map[uint64]int{}, queriers: map[string]*querierState{},
		changed: make(chan struct{}),
	}
}

// notifyLocked wakes every waiting querier.
func (q *queue) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// enqueue queues r, or refuses it when its workspace has too many queued.
func (q *queue) enqueue(r *request) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return apierror.New(apierror.Unavailable, "", "the query-frontend is shutting down")
	}
	pending := q.workspaces[r.workspace]
	queries := q.queries[r.workspace]
	if _, admitted := queries[r.query]; !admitted && len(queries) >= q.maxOutstanding {
		return apierror.New(apierror.TooManyRequests, apierror.IDTooManyOutstandingRequests,
			"too many outstanding requests: the workspace has %d queries waiting for a querier (-query-frontend.max-outstanding-requests-per-workspace)", len(queries))
	}
	if queries == nil {
		queries = map[uint64]int{}
		q.queries[r.workspace] = queries
	}
	queries[r.query]++
	if len(pending) == 0 {
		q.order = append(q.order, r.workspace)
	}
	q.workspaces[r.workspace] = append(pending, r)
	q.metrics.queueLength.WithLabelValues(r.workspace).Set(float64(len(pending) + 1))
	q.notifyLocked()
	return nil
}

// connect counts one more stream of querier id; disconnect one less.
func (q *queue) connect(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.queriers[id]
	if s == nil {
		s = &querierState{inflight: map[string]int{}}
		q.queriers[id] = s
		q.metrics.queriers.Set(float64(len(q.queriers)))
		q.notifyLocked() // shuffle shards change
	}
	s.streams++
}

func (q *queue) disconnect(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s := q.queriers[id]; s != nil {
		if s.streams--; s.streams == 0 {
			delete(q.queriers, id)
			q.metrics.queriers.Set(float64(len(q.queriers)))
			q.notifyLocked()
		}
	}
}

// next takes the next request querier id may serve, waiting until there is
// one or ctx ends. Requests whose caller went away are dropped. The
// returned function is called once the querier answered.
func (q *queue) next(ctx context.Context, id string) (*request, func(), error) {
	for {
		q.mu.Lock()
		if q.stopped {
			q.mu.Unlock()
			return nil, nil, context.Canceled
		}
		if r := q.takeLocked(id); r != nil {
			s := q.queriers[id]
			s.inflight[r.workspace]++
			q.mu.Unlock()
			q.metrics.queueDuration.Observe(time.Since(r.enqueued).Seconds())
			return r, func() { q.finished(id, r.workspace) }, nil
		}
		wait := q.changed
		q.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

func (q *queue) finished(id, workspace string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s := q.queriers[id]; s != nil {
		if s.inflight[workspace]--; s.inflight[workspace] <= 0 {
			delete(s.inflight, workspace)
		}
	}
	q.notifyLocked()
}

// takeLocked pops the first live request of the next workspace, in round
// robin order from where querier id left off, that id may serve.
func (q *queue) takeLocked(id string) *request {
	s := q.queriers[id]
	if s == nil || len(q.order) == 0 {
		return nil
	}
	from := s.next % len(q.order)
	candidates := append(slices.Clone(q.order[from:]), q.order[:from]...)
	for _, ws := range candidates {
		if !q.servesLocked(id, ws) {
			continue
		}
		if limit := q.limits.MaxConcurrentQueries(ws); limit > 0 && s.inflight[ws] >= limit {
			continue
		}
		idx := slices.Index(q.order, ws)
		r := q.popLocked(idx)
		if r == nil {
			continue // every queued request of ws was abandoned
		}
		s.next = idx
		if idx < len(q.order) && q.order[idx] == ws {
			s.next = idx + 1 // ws still queues: start after it
		}
		return r
	}
	return nil
}

// unqueuedLocked counts r out of its query's queued requests.
func (q *queue) unqueuedLocked(r *request) {
	queries := q.queries[r.workspace]
	if queries[r.query]--; queries[r.query] <= 0 {
		delete(queries, r.query)
	}
	if len(queries) == 0 {
		delete(q.queries, r.workspace)
	}
}

// popLocked removes the first request of order[idx] whose caller still
// waits, dropping those that went away; it removes the workspace from
// order once it has nothing queued.
func (q *queue) popLocked(idx int) *request {
	ws := q.order[idx]
	pending := q.workspaces[ws]
	var r *request
	for len(pending) > 0 && r == nil {
		head := pending[0]
		pending[0] = nil
		pending = pending[1:]
		q.unqueuedLocked(head)
		if head.ctx.Err() != nil {
			q.metrics.dropped.Inc()
			continue
		}
		r = head
	}
	if len(pending) == 0 {
		delete(q.workspaces, ws)
		q.order = slices.Delete(q.order, idx, idx+1)
		q.metrics.queueLength.DeleteLabelValues(ws)
	} else {
		q.workspaces[ws] = pending
		q.metrics.queueLength.WithLabelValues(ws).Set(float64(len(pending)))
	}
	return r
}

// servesLocked tells whether querier id is one of the workspace's shuffle
// shard of queriers: MaxQueriersPerWorkspace of the connected ones, picked
// by a shuffle seeded with the workspace, so that the same workspace gets
// the same queriers while they stay connected.
func (q *queue) servesLocked(id, ws string) bool {
	n := q.limits.MaxQueriersPerWorkspace(ws)
	if n <= 0 || n >= len(q.queriers) {
		return true
	}
	ids := make([]string, 0, len(q.queriers))
	for qid := range q.queriers {
		ids = append(ids, qid)
	}
	return slices.Contains(shuffleShard(ws, ids, n), id)
}

// shuffleShard picks n of ids for workspace ws, the same n for the same
// set of ids.
func shuffleShard(ws string, ids []string, n int) []string {
	slices.Sort(ids)
	h := fnv.New64a()
	_, _ = h.Write([]byte(ws))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids[:n]
}

// stop fails every queued request and wakes every querier.
func (q *queue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	for ws, pending := range q.workspaces {
		for _, r := range pending {
			r.done <- result{err: apierror.New(apierror.Unavailable, "", "the query-frontend is shutting down")}
		}
		q.metrics.queueLength.DeleteLabelValues(ws)
	}
	q.workspaces, q.queries, q.order = map[string][]*request{}, map[string]map[uint64]int{}, nil
	q.notifyLocked()
}
