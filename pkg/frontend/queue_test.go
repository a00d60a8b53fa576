package frontend

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

func newTestQueue(maxOutstanding int, l QueueLimits) *queue {
	return newQueue(maxOutstanding, l, newMetrics(prometheus.NewRegistry()))
}

func queued(ctx context.Context, ws string, n int) *request {
	return &request{ctx: ctx, workspace: ws, query: uint64(n + 1), req: &httpgrpc.HTTPRequest{Url: fmt.Sprintf("/%s/%d", ws, n)}, enqueued: time.Now(), done: make(chan result, 1)}
}

func TestQueueRoundRobinsWorkspaces(t *testing.T) {
	q := newTestQueue(100, testLimits{})
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		require.NoError(t, q.enqueue(queued(ctx, "ws-a", i)))
	}
	require.NoError(t, q.enqueue(queued(ctx, "ws-b", 0)))
	require.NoError(t, q.enqueue(queued(ctx, "ws-c", 0)))
	require.Equal(t, 50.0, testutil.ToFloat64(q.metrics.queueLength.WithLabelValues("ws-a")))
	q.connect("q1")
	var got []string
	for i := 0; i < 6; i++ {
		r, done, err := q.next(ctx, "q1")
		require.NoError(t, err)
		done()
		got = append(got, r.req.Url)
	}
	// B and C are served after one request of A, not after fifty.
	require.Equal(t, []string{"/ws-a/0", "/ws-b/0", "/ws-c/0", "/ws-a/1", "/ws-a/2", "/ws-a/3"}, got)
}

func TestQueueRefusesBeyondMaxOutstanding(t *testing.T) {
	q := newTestQueue(3, testLimits{})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		require.NoError(t, q.enqueue(queued(ctx, "ws-a", i)))
	}
	err := q.enqueue(queued(ctx, "ws-a", 3))
	require.Equal(t, apierror.TooManyRequests, apierror.CauseOf(err))
	require.Contains(t, err.Error(), "err-vigil-too-many-outstanding-requests")
	require.NoError(t, q.enqueue(queued(ctx, "ws-b", 0)), "other workspaces unaffected")
}

// TestQueueCountsQueriesNotLegs: the legs of an admitted query are never
// refused, however many; a query is counted out once its last leg left.
func TestQueueCountsQueriesNotLegs(t *testing.T) {
	q := newTestQueue(2, testLimits{})
	ctx := context.Background()
	leg := func(query uint64) *request {
		r := queued(ctx, "ws-a", 0)
		r.query = query
		return r
	}
	for i := 0; i < 14; i++ {
		require.NoError(t, q.enqueue(leg(1)))
	}
	require.NoError(t, q.enqueue(leg(2)))
	require.Error(t, q.enqueue(leg(3)), "a third query")
	require.NoError(t, q.enqueue(leg(2)), "another leg of an admitted query")
	q.connect("q1")
	for i := 0; i < 14; i++ {
		_, done, err := q.next(ctx, "q1")
		require.NoError(t, err)
		done()
	}
	require.NoError(t, q.enqueue(leg(3)), "query 1 has left the queue")
}

func TestQueueDropsAbandonedRequests(t *testing.T) {
	q := newTestQueue(10, testLimits{})
	gone, cancel := context.WithCancel(context.Background())
	require.NoError(t, q.enqueue(queued(gone, "ws-a", 0)))
	require.NoError(t, q.enqueue(queued(context.Background(), "ws-a", 1)))
	cancel()
	q.connect("q1")
	r, done, err := q.next(context.Background(), "q1")
	require.NoError(t, err)
	done()
	require.Equal(t, "/ws-a/1", r.req.Url)
	require.Equal(t, 1.0, testutil.ToFloat64(q.metrics.dropped))

	// A querier waiting for work stops with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = q.next(ctx, "q1")
	require.True(t, errors.Is(err, context.DeadlineExceeded))
}

func TestQueueLimitsAWorkspacePerQuerier(t *testing.T) {
	q := newTestQueue(100, testLimits{maxConcurrent: 2})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		require.NoError(t, q.enqueue(queued(ctx, "ws-a", i)))
	}
	q.connect("q1")
	_, done1, err := q.next(ctx, "q1")
	require.NoError(t, err)
	_, _, err = q.next(ctx, "q1")
	require.NoError(t, err)
	// A's third waits while the querier runs two of A's, and B's is taken.
	require.NoError(t, q.enqueue(queued(ctx, "ws-b", 0)))
	r, _, err := q.next(ctx, "q1")
	require.NoError(t, err)
	require.Equal(t, "/ws-b/0", r.req.Url)
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	_, _, err = q.next(short, "q1")
	require.Error(t, err, "A is at its limit on q1")
	done1()
	r, _, err = q.next(ctx, "q1")
	require.NoError(t, err)
	require.Equal(t, "/ws-a/2", r.req.Url)
}

func TestQueueShuffleShardsWorkspaces(t *testing.T) {
	q := newTestQueue(1000, testLimits{maxQueriers: 2})
	ids := []string{"q1", "q2", "q3", "q4", "q5"}
	for _, id := range ids {
		q.connect(id)
	}
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		require.NoError(t, q.enqueue(queued(ctx, "ws-a", i)))
	}
	served := map[string]bool{}
	for _, id := range ids {
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		if _, done, err := q.next(short, id); err == nil {
			served[id] = true
			done()
		}
		cancel()
	}
	require.Len(t, served, 2)
	// The same two, as long as the same queriers are connected.
	require.ElementsMatch(t, shuffleShard("ws-a", append([]string(nil), ids...), 2), keys(served))
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
