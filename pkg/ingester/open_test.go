package ingester

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// newIngester returns an ingester that is not started yet, with its registry.
func newIngester(t testing.TB, cfg Config, dir string, store ringmember.Store) (*Ingester, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	ing, err := New(cfg, dir, 9095, testBucket(t, dir), store, reg, log.NewNopLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), ing) })
	return ing, reg
}

// seed writes one sample to each workspace and stops the ingester.
func seed(t *testing.T, dir string, store ringmember.Store, workspaces ...string) {
	t.Helper()
	ing := startIngester(t, testConfig(), dir, store.Client)
	for _, ws := range workspaces {
		require.NoError(t, push(t, ing, ws, ts("up", ws, prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1})))
	}
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
}

// TestBrokenTSDBIsIsolated: a workspace whose TSDB cannot be opened answers
// 500 with an ID; the ingester starts and every other workspace works.
// Before the fix, one broken TSDB kept the ingester from starting at all.
func TestBrokenTSDBIsIsolated(t *testing.T) {
	dir, store := t.TempDir(), ringmember.Store{Client: newKV(t)}
	seed(t, dir, store, "ws-good", "ws-bad")
	wal := filepath.Join(dir, "ingester", "tsdb", "ws-bad", "wal")
	require.NoError(t, os.RemoveAll(wal))
	require.NoError(t, os.WriteFile(wal, []byte("not a directory"), 0o644))

	ing, reg := newIngester(t, testConfig(), dir, store)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	require.NoError(t, ing.CheckReady(context.Background()))
	require.Len(t, read(t, ing, "ws-good"), 1)

	err := push(t, ing, "ws-bad", ts("up", "x", prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1}))
	require.Equal(t, http.StatusInternalServerError, apierror.StatusOf(err))
	require.ErrorContains(t, err, "(err-vigil-tsdb-unavailable)")
	require.NoError(t, push(t, ing, "ws-good", ts("up", "x", prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1})))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_ingester_tsdb_open_failures_total Workspace TSDBs that failed to open (WAL replay included), by workspace.
# TYPE vigil_ingester_tsdb_open_failures_total counter
vigil_ingester_tsdb_open_failures_total{workspace="ws-bad"} 1
`), "vigil_ingester_tsdb_open_failures_total"), "a request within the retry backoff does not open again")
}

// TestIdleWorkspacesCloseAfterRestart: a workspace last written long ago
// is opened at start-up (its WAL replayed) and closes at the next idle
// sweep; before the fix every TSDB opened at start counted as just used.
func TestIdleWorkspacesCloseAfterRestart(t *testing.T) {
	dir, store := t.TempDir(), ringmember.Store{Client: newKV(t)}
	seed(t, dir, store, "ws-idle", "ws-busy")
	old := time.Now().Add(-2 * time.Hour)
	walDir := filepath.Join(dir, "ingester", "tsdb", "ws-idle", "wal")
	_, last, err := wlog.Segments(walDir)
	require.NoError(t, err)
	require.NoError(t, os.Chtimes(wlog.SegmentName(walDir, last), old, old))

	ing := startIngester(t, testConfig(), dir, store.Client)
	require.Len(t, ing.openDBs(), 2)
	ing.closeIdle(context.Background())
	open := ing.openDBs()
	require.Len(t, open, 1)
	require.Contains(t, open, "ws-busy")
	require.Len(t, read(t, ing, "ws-idle"), 1, "a closed workspace opens again on use")
}

// TestReplayRunsInParallelWithABound: start-up replays WALs concurrently,
// never more than -ingester.tsdb.wal-replay-concurrency at once.
func TestReplayRunsInParallelWithABound(t *testing.T) {
	dir, store := t.TempDir(), ringmember.Store{Client: newKV(t)}
	seed(t, dir, store, "ws-1", "ws-2", "ws-3", "ws-4", "ws-5")
	cfg := testConfig()
	cfg.WALReplayWorkers = 2
	ing, _ := newIngester(t, cfg, dir, store)
	var now, peak atomic.Int32
	ing.openTSDB = func(dir string, logger log.Logger, opts *tsdb.Options) (*tsdb.DB, error) {
		n := now.Add(1)
		defer now.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(50 * time.Millisecond)
		return openTSDB(dir, logger, opts)
	}
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	require.Len(t, ing.openDBs(), 5)
	require.EqualValues(t, 2, peak.Load())
}

// TestAcquireHonoursTheRequestDeadline: a request waiting for a TSDB that is
// still replaying its WAL gives up at its deadline; the open goes on.
func TestAcquireHonoursTheRequestDeadline(t *testing.T) {
	ing, _ := newIngester(t, testConfig(), t.TempDir(), ringmember.Store{Client: newKV(t)})
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	release := make(chan struct{})
	ing.openTSDB = func(dir string, logger log.Logger, opts *tsdb.Options) (*tsdb.DB, error) {
		<-release
		return openTSDB(dir, logger, opts)
	}
	ctx, cancel := context.WithTimeout(tenant.WithID(context.Background(), "ws-slow"), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := ing.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("up", "a", prompb.Sample{Timestamp: 1, Value: 1})}})
	require.Equal(t, http.StatusServiceUnavailable, apierror.StatusOf(err))
	require.Less(t, time.Since(start), 5*time.Second)
	close(release)
	require.NoError(t, push(t, ing, "ws-slow", ts("up", "a", prompb.Sample{Timestamp: 1, Value: 1})))
}

// TestWALSyncGroupCommit: concurrent pushes share fsyncs, and each returns
// only after an fsync that started after it asked.
func TestWALSyncGroupCommit(t *testing.T) {
	s := newWALSyncer(t.TempDir(), newMetrics(prometheus.NewRegistry(), func() float64 { return 0 }, func() float64 { return 0 }))
	var mu sync.Mutex
	var starts []time.Time
	s.fsync = func() error {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		return nil
	}
	const callers = 50
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 5; k++ {
				asked := time.Now()
				require.NoError(t, s.sync())
				mu.Lock()
				covered := false
				for _, st := range starts {
					if !st.Before(asked) {
						covered = true
					}
				}
				mu.Unlock()
				require.True(t, covered, "sync returned without an fsync that started after it asked")
			}
		}()
	}
	wg.Wait()
	require.Less(t, len(starts), callers*5/4, "pushes did not share fsyncs")
}

func TestWALSyncAlways(t *testing.T) {
	cfg := testConfig()
	cfg.WALSync = WALSyncAlways
	ing, reg := newIngester(t, cfg, t.TempDir(), ringmember.Store{Client: newKV(t)})
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	for k := 0; k < 3; k++ {
		require.NoError(t, push(t, ing, "ws-a", ts("up", "a", prompb.Sample{Timestamp: int64(k + 1), Value: 1})))
	}
	n, err := testutil.GatherAndCount(reg, "vigil_ingester_wal_syncs_total")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, float64(3), testutil.ToFloat64(ing.metrics.walSyncs), "one fsync per push made one at a time")
}

// TestActiveSeriesPerWorkspace: each open workspace reports its head series;
// a closed one reports none.
func TestActiveSeriesPerWorkspace(t *testing.T) {
	ing, reg := newIngester(t, testConfig(), t.TempDir(), ringmember.Store{Client: newKV(t)})
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-a", ts("up", "a", prompb.Sample{Timestamp: now, Value: 1}), ts("up", "b", prompb.Sample{Timestamp: now, Value: 1})))
	require.NoError(t, push(t, ing, "ws-b", ts("up", "a", prompb.Sample{Timestamp: now, Value: 1})))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_ingester_active_series Series in the in-memory head of each open workspace TSDB (samples of the last 2 to 3 hours).
# TYPE vigil_ingester_active_series gauge
vigil_ingester_active_series{workspace="ws-a"} 2
vigil_ingester_active_series{workspace="ws-b"} 1
`), "vigil_ingester_active_series"))
	ing.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	ing.closeIdle(context.Background())
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(``), "vigil_ingester_active_series"))
}

// TestWALSyncFailureIsSticky: after one failed fsync, later ones cannot be
// trusted: every push fails, even when the next fsync would succeed.
func TestWALSyncFailureIsSticky(t *testing.T) {
	s := newWALSyncer(t.TempDir(), newMetrics(prometheus.NewRegistry(), func() float64 { return 0 }, func() float64 { return 0 }))
	var calls atomic.Int32
	s.fsync = func() error {
		if calls.Add(1) == 1 {
			return errors.New("input/output error")
		}
		return nil
	}
	require.ErrorContains(t, s.sync(), "input/output error")
	require.ErrorContains(t, s.sync(), "no later one can be trusted")
	require.EqualValues(t, 1, calls.Load())
}
