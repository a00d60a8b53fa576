package querier

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// TestWorkspaceSlots: a workspace at its bound waits, and is refused with
// 429 when no slot frees in time, while another workspace takes a slot at
// once; a released slot goes to the next query; idle workspaces are
// forgotten.
func TestWorkspaceSlots(t *testing.T) {
	s := newWorkspaceSlots()
	ctx := context.Background()
	never := make(chan time.Time)
	r1, err := s.acquire(ctx, "heavy", 2, never)
	require.NoError(t, err)
	r2, err := s.acquire(ctx, "heavy", 2, never)
	require.NoError(t, err)

	fired := make(chan time.Time, 1)
	fired <- time.Now()
	_, err = s.acquire(ctx, "heavy", 2, fired)
	require.Equal(t, http.StatusTooManyRequests, apierror.StatusOf(err))
	require.Equal(t, apierror.IDWorkspaceQueryConcurrency, apierror.From(err).ID)

	rb, err := s.acquire(ctx, "light", 2, never)
	require.NoError(t, err, "another workspace is not held up")
	rb()

	got := make(chan error, 1)
	go func() {
		r, err := s.acquire(ctx, "heavy", 2, never)
		if err == nil {
			r()
		}
		got <- err
	}()
	r1()
	require.NoError(t, <-got, "a released slot goes to the waiting query")
	r2()
	s.mu.Lock()
	require.Empty(t, s.slots, "idle workspaces are forgotten")
	s.mu.Unlock()

	release, err := s.acquire(ctx, "any", 0, fired)
	require.NoError(t, err, "no bound")
	release()
}

// TestTimeoutIs422: a query that runs out of time is answered 422, as AMP
// does (Prometheus answers 503).
func TestTimeoutIs422(t *testing.T) {
	code, ok := statusOfCause(v1.ErrorTimeout, promql.ErrQueryTimeout("query timed out in expression evaluation"))
	require.True(t, ok)
	require.Equal(t, http.StatusUnprocessableEntity, code)
}
