//go:build e2e

package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// TestClusterRollingRestart restarts ingester a, so that writes made while
// it is down reach only zones b and c, then restarts ingester b. Queries run
// all along, and every query returns every sample acknowledged before it
// began: while b restarts, only zone c holds the writes a missed, so no
// query may be answered by zone a alone. Ingesters stay in the ring across
// restarts; with -ingester.ring.unregister-on-shutdown they leave it, and
// the querier must still count the missing zone as unavailable.
func TestClusterRollingRestart(t *testing.T) {
	for _, unregister := range []bool{false, true} {
		t.Run(fmt.Sprintf("unregister-on-shutdown=%v", unregister), func(t *testing.T) {
			rollingRestart(t, fmt.Sprintf("-ingester.ring.unregister-on-shutdown=%v", unregister))
		})
	}
}

func rollingRestart(t *testing.T, ringFlag string) {
	c := startCluster(t, ringFlag)
	ws := createWorkspace(t, c.dist.base(), "rolling")
	w := &ackedWriter{}
	r := &checkingReader{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	rw := remoteWriter(t, workspaceURL(c.dist.base(), ws)+"/api/v1/remote_write")
	go func() { defer wg.Done(); w.run(rw, stop) }()
	go func() { defer wg.Done(); r.run(workspaceURL(c.quer.base(), ws), w, stop) }()

	w.waitAcks(t, 10)
	a, b := c.ingesters[0], c.ingesters[1]
	a.stop()
	w.waitAcks(t, 20) // stored by b and c only
	a.start()
	waitReady(t, a.base())
	waitRingActive(t, c.quer.admin(), 3)
	w.waitAcks(t, 10)

	b.stop()
	w.waitAcks(t, 20)
	r.waitChecks(t, 10) // queries while b is down: a and c must both answer
	b.start()
	waitReady(t, b.base())
	w.waitAcks(t, 10)
	close(stop)
	wg.Wait()

	acked, failed := w.snapshot()
	require.Empty(t, failed, "pushes failed during the rolling restart")
	checks, problems := r.snapshot()
	require.Empty(t, problems, "queries during the rolling restart")
	require.Greater(t, checks, 20)
	requireAllQueryable(t, c.quer.base(), ws, acked)
	c.stopAll()
}

// checkingReader queries continuously and checks that every query returns
// every sample the writer had acknowledged when the query began.
type checkingReader struct {
	mu       sync.Mutex
	checks   int
	problems []string
}

func (r *checkingReader) run(endpoint string, w *ackedWriter, stop <-chan struct{}) {
	c, err := newPromAPI(endpoint)
	if err != nil {
		r.record(err.Error())
		return
	}
	for {
		select {
		case <-stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
		acked, _ := w.snapshot()
		if len(acked) == 0 {
			continue
		}
		end := time.UnixMilli(acked[len(acked)-1])
		span := end.Sub(time.UnixMilli(acked[0])) + time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		val, _, _, err := c.Query(ctx, fmt.Sprintf("cluster_test_metric[%dms]", span.Milliseconds()), end)
		cancel()
		if err != nil {
			r.record(fmt.Sprintf("query failed: %v", err))
			continue
		}
		r.record(missing(val.(model.Matrix), acked))
	}
}

// missing describes the first acknowledged sample absent from m ("" if none).
func missing(m model.Matrix, acked []int64) string {
	if len(m) != clusterSeries {
		return fmt.Sprintf("%d series, want %d", len(m), clusterSeries)
	}
	for _, s := range m {
		have := map[int64]bool{}
		for _, p := range s.Values {
			have[int64(p.Timestamp)] = true
		}
		for _, ts := range acked {
			if !have[ts] {
				return fmt.Sprintf("acknowledged sample at %d of %s missing", ts, s.Metric)
			}
		}
	}
	return ""
}

func (r *checkingReader) record(problem string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks++
	if problem != "" {
		r.problems = append(r.problems, problem)
	}
}

func (r *checkingReader) snapshot() (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checks, append([]string(nil), r.problems...)
}

// waitChecks waits until n more queries than now have been checked.
func (r *checkingReader) waitChecks(t *testing.T, n int) {
	t.Helper()
	before, _ := r.snapshot()
	require.Eventually(t, func() bool { c, _ := r.snapshot(); return c >= before+n }, 60*time.Second, 20*time.Millisecond)
}
