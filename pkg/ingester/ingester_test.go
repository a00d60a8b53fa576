package ingester

import (
	"context"
	"flag"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.uber.org/goleak"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/ringmember/ringtest"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

func testConfig() Config {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.Ring.InstanceID = "ingester-test"
	cfg.Ring.InstanceAddr = "127.0.0.1"
	cfg.Ring.HeartbeatPeriod = 100 * time.Millisecond
	return cfg
}

func startIngester(t testing.TB, cfg Config, dir string, store kv.Client) *Ingester {
	t.Helper()
	ing, err := New(cfg, dir, 9095, testBucket(t, dir), ringmember.Store{Client: store}, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), ing) })
	return ing
}

// testBucket is the object storage of the ingester in dir: a directory
// beside its TSDBs, which outlives a restart as a real bucket does.
func testBucket(t testing.TB, dir string) objstore.Bucket {
	t.Helper()
	bkt, err := filesystem.NewBucket(filepath.Join(dir, "bucket"))
	require.NoError(t, err)
	return bkt
}

func newKV(t testing.TB) kv.Client {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	return store
}

func push(t testing.TB, ing *Ingester, ws string, series ...prompb.TimeSeries) error {
	t.Helper()
	return ing.Push(tenant.WithID(context.Background(), ws), &prompb.WriteRequest{Timeseries: series})
}

func ts(name, job string, samples ...prompb.Sample) prompb.TimeSeries {
	return prompb.TimeSeries{
		Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: job}},
		Samples: samples,
	}
}

// read returns the samples of every series of ws, keyed by label string.
func read(t testing.TB, ing *Ingester, ws string) map[string][]prompb.Sample {
	t.Helper()
	q, err := ing.Querier(tenant.WithID(context.Background(), ws), 0, 1<<62)
	require.NoError(t, err)
	defer q.Close()
	ss := storage.NewSeriesSetFromChunkSeriesSet(q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")))
	out := map[string][]prompb.Sample{}
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			tt, v := it.At()
			out[s.Labels().String()] = append(out[s.Labels().String()], prompb.Sample{Timestamp: tt, Value: v})
		}
	}
	require.NoError(t, ss.Err())
	return out
}

func TestPushQueryAndIsolation(t *testing.T) {
	ing := startIngester(t, testConfig(), t.TempDir(), newKV(t))
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-a", ts("up", "api", prompb.Sample{Timestamp: now, Value: 1}, prompb.Sample{Timestamp: now + 1000, Value: 2})))
	require.NoError(t, push(t, ing, "ws-b", ts("up", "db", prompb.Sample{Timestamp: now, Value: 9})))

	require.Equal(t, map[string][]prompb.Sample{
		`{__name__="up", job="api"}`: {{Timestamp: now, Value: 1}, {Timestamp: now + 1000, Value: 2}},
	}, read(t, ing, "ws-a"))
	require.Equal(t, map[string][]prompb.Sample{
		`{__name__="up", job="db"}`: {{Timestamp: now, Value: 9}},
	}, read(t, ing, "ws-b"))
	require.Empty(t, read(t, ing, "ws-unknown"))
}

func TestPushRejectsOutOfOrderButStoresTheRest(t *testing.T) {
	ing := startIngester(t, testConfig(), t.TempDir(), newKV(t))
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-a", ts("up", "api", prompb.Sample{Timestamp: now, Value: 1})))

	err := push(t, ing, "ws-a",
		ts("up", "api", prompb.Sample{Timestamp: now - 1000, Value: 0}),
		ts("up", "new", prompb.Sample{Timestamp: now, Value: 5}))
	require.Error(t, err)
	require.Equal(t, apierror.BadData, apierror.CauseOf(err))
	require.Contains(t, err.Error(), "out of order")
	require.Contains(t, err.Error(), `job="api"`)

	// A duplicate timestamp with another value is refused; the same value is an idempotent retry.
	require.NoError(t, push(t, ing, "ws-a", ts("up", "api", prompb.Sample{Timestamp: now, Value: 1})))
	err = push(t, ing, "ws-a", ts("up", "api", prompb.Sample{Timestamp: now, Value: 3}))
	require.ErrorContains(t, err, "duplicate sample")

	got := read(t, ing, "ws-a")
	require.Equal(t, []prompb.Sample{{Timestamp: now, Value: 1}}, got[`{__name__="up", job="api"}`])
	require.Equal(t, []prompb.Sample{{Timestamp: now, Value: 5}}, got[`{__name__="up", job="new"}`])
}

// TestRestartReplaysWALAndStaysInRing: a cleanly stopped ingester stays in
// the ring as LEAVING (so that a restart never shrinks the ring a querier
// counts its quorum over), and takes its tokens back on restart.
func TestRestartReplaysWALAndStaysInRing(t *testing.T) {
	dir, store := t.TempDir(), newKV(t)
	cfg := testConfig()
	ing := startIngester(t, cfg, dir, store)
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-a", ts("up", "api", prompb.Sample{Timestamp: now, Value: 7})))
	require.NoError(t, ing.CheckReady(context.Background()))
	tokens := ing.lifecycler.GetTokens()
	require.Len(t, tokens, cfg.Ring.NumTokens)

	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
	desc, err := store.Get(context.Background(), RingKey)
	require.NoError(t, err)
	inst, ok := desc.(*ring.Desc).Ingesters[cfg.Ring.InstanceID]
	require.True(t, ok, "a cleanly stopped ingester stays in the ring")
	require.Equal(t, ring.LEAVING, inst.State)
	require.Error(t, push(t, ing, "ws-a", ts("up", "api", prompb.Sample{Timestamp: now + 1, Value: 1})), "a stopped ingester refuses writes")

	ing2 := startIngester(t, cfg, dir, store)
	require.Equal(t, []prompb.Sample{{Timestamp: now, Value: 7}}, read(t, ing2, "ws-a")[`{__name__="up", job="api"}`])
	require.Equal(t, ring.ACTIVE, ing2.lifecycler.GetState())
	require.Equal(t, tokens, ing2.lifecycler.GetTokens(), "tokens are persisted across restarts")
}

// TestUnregisterOnShutdown: the scale-down flow removes the ingester.
func TestUnregisterOnShutdown(t *testing.T) {
	store := newKV(t)
	cfg := testConfig()
	cfg.Ring.UnregisterOnShutdown = true
	ing := startIngester(t, cfg, t.TempDir(), store)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
	desc, err := store.Get(context.Background(), RingKey)
	require.NoError(t, err)
	require.NotContains(t, desc.(*ring.Desc).Ingesters, cfg.Ring.InstanceID)
}

func TestIdleTSDBIsClosedAndReopened(t *testing.T) {
	cfg := testConfig()
	cfg.IdleTimeout = time.Minute
	ing := startIngester(t, cfg, t.TempDir(), newKV(t))
	now := time.Now()
	require.NoError(t, push(t, ing, "ws-a", ts("up", "api", prompb.Sample{Timestamp: now.UnixMilli(), Value: 1})))

	// A querier in use keeps the TSDB open even past the idle timeout.
	q, err := ing.Querier(tenant.WithID(context.Background(), "ws-a"), 0, 1<<62)
	require.NoError(t, err)
	ing.now = func() time.Time { return now.Add(2 * time.Minute) }
	ing.closeIdle(context.Background())
	require.Len(t, ing.dbs, 1)
	require.NoError(t, q.Close())

	ing.closeIdle(context.Background())
	require.Empty(t, ing.dbs)

	// The next request reopens it from disk.
	require.Equal(t, []prompb.Sample{{Timestamp: now.UnixMilli(), Value: 1}}, read(t, ing, "ws-a")[`{__name__="up", job="api"}`])
	require.Len(t, ing.dbs, 1)
	var _ storage.ChunkQuerier = q
}

// TestPushCopiesLabels guards the distributor's zero-copy decoding: the wire
// labels alias a request buffer that is reused after the push, so the
// ingester must keep copies (as labels.ScratchBuilder does in the default
// stringlabels build) and never the wire strings themselves.
func TestPushCopiesLabels(t *testing.T) {
	ing := startIngester(t, testConfig(), t.TempDir(), newKV(t))
	buf := []byte("upjobapi")
	alias := func(from, to int) string { return unsafe.String(&buf[from], to-from) }
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-a", prompb.TimeSeries{
		Labels:  []prompb.Label{{Name: "__name__", Value: alias(0, 2)}, {Name: alias(2, 5), Value: alias(5, 8)}},
		Samples: []prompb.Sample{{Timestamp: now, Value: 1}},
	}))
	copy(buf, "XXXXXXXX")
	require.Contains(t, read(t, ing, "ws-a"), `{__name__="up", job="api"}`)
	// The cached labels of the series must not alias the buffer either.
	require.NoError(t, push(t, ing, "ws-a", ts("up", "api", prompb.Sample{Timestamp: now + 1, Value: 2})))
	require.Len(t, read(t, ing, "ws-a")[`{__name__="up", job="api"}`], 2)
}

func TestWorkspaceIDMustBeSafe(t *testing.T) {
	ing := startIngester(t, testConfig(), t.TempDir(), newKV(t))
	for _, id := range []string{"../escape", "a/b", ".hidden", ""} {
		err := push(t, ing, id, ts("up", "x", prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1}))
		require.Error(t, err, id)
		require.Equal(t, apierror.BadData, apierror.CauseOf(err), id)
	}
}

// TestNestedAcquireDuringShutdown: a query holds its TSDB while it opens a
// second querier on it; shutdown waits for both instead of deadlocking.
func TestNestedAcquireDuringShutdown(t *testing.T) {
	ing := startIngester(t, testConfig(), t.TempDir(), newKV(t))
	require.NoError(t, push(t, ing, "ws-a", ts("up", "x", prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1})))
	ctx := tenant.WithID(context.Background(), "ws-a")
	q1, err := ing.Querier(ctx, 0, 1<<62)
	require.NoError(t, err)
	stopped := make(chan error, 1)
	go func() { stopped <- services.StopAndAwaitTerminated(context.Background(), ing) }()
	require.Eventually(t, func() bool { ing.mu.RLock(); defer ing.mu.RUnlock(); return ing.shuttingDown }, 5*time.Second, time.Millisecond)
	_, err = ing.Querier(ctx, 0, 1<<62)
	require.Error(t, err, "new requests are refused while stopping")
	require.NoError(t, q1.Close())
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not finish after the last querier closed")
	}
}

func TestInvalidHistogramIsAClientError(t *testing.T) {
	ing := startIngester(t, testConfig(), t.TempDir(), newKV(t))
	now := time.Now().UnixMilli()
	bad := prompb.TimeSeries{
		Labels: []prompb.Label{{Name: "__name__", Value: "h"}},
		Histograms: []prompb.Histogram{{
			Timestamp: now, Count: &prompb.Histogram_CountInt{CountInt: 1}, Schema: 0,
			ZeroCount:     &prompb.Histogram_ZeroCountInt{ZeroCountInt: 0},
			PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 1}}, PositiveDeltas: []int64{5},
		}},
	}
	err := push(t, ing, "ws-a", bad, ts("up", "ok", prompb.Sample{Timestamp: now, Value: 1}))
	require.Equal(t, apierror.BadData, apierror.CauseOf(err), "%v", err)
	require.Contains(t, err.Error(), "native histogram is invalid")
	require.Contains(t, read(t, ing, "ws-a"), `{__name__="up", job="ok"}`)
}

// TestConcurrentPushQueryAndIdleClose closes TSDBs as idle as fast as it can
// while workspaces are written and read: every acknowledged sample must be
// readable at the end, and nothing may race (run with -race).
func TestConcurrentPushQueryAndIdleClose(t *testing.T) {
	cfg := testConfig()
	cfg.IdleTimeout = time.Nanosecond
	ing := startIngester(t, cfg, t.TempDir(), newKV(t))
	base := time.Now().UnixMilli()
	workspaces := []string{"ws-a", "ws-b", "ws-c"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// repeat runs f on its own goroutine until stop closes or f returns false.
	repeat := func(f func() bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !f() {
					return
				}
			}
		}()
	}
	acked := make([]int, len(workspaces))
	for w := range workspaces {
		repeat(func() bool {
			n := acked[w]
			if err := push(t, ing, workspaces[w], ts("up", "x", prompb.Sample{Timestamp: base + int64(n), Value: float64(n)})); err != nil {
				t.Errorf("push %d to %s: %v", n, workspaces[w], err)
				return false
			}
			acked[w] = n + 1
			return true
		})
	}
	repeat(func() bool {
		for _, ws := range workspaces {
			q, err := ing.Querier(tenant.WithID(context.Background(), ws), 0, 1<<62)
			if err != nil {
				t.Errorf("querier: %v", err)
				return false
			}
			_ = q.Close()
		}
		return true
	})
	repeat(func() bool { ing.closeIdle(context.Background()); return true })
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	for w, ws := range workspaces {
		require.Len(t, read(t, ing, ws)[`{__name__="up", job="x"}`], acked[w], ws)
	}
}

// TestInstanceSeriesLimit: beyond -ingester.instance-limits.max-series, new
// series are refused with 503 while existing ones keep taking samples, and
// a WAL holding more series than the limit is replayed whole.
func TestInstanceSeriesLimit(t *testing.T) {
	dir, store := t.TempDir(), newKV(t)
	cfg := testConfig()
	ing := startIngester(t, cfg, dir, store)
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-a", ts("up", "a", prompb.Sample{Timestamp: now, Value: 1}), ts("up", "b", prompb.Sample{Timestamp: now, Value: 1})))
	require.NoError(t, push(t, ing, "ws-b", ts("up", "c", prompb.Sample{Timestamp: now, Value: 1})))
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))

	cfg.InstanceLimits.MaxSeries = 2
	ing = startIngester(t, cfg, dir, store)
	require.Len(t, read(t, ing, "ws-a"), 2, "replay is never refused")
	require.Len(t, read(t, ing, "ws-b"), 1)
	require.EqualValues(t, 3, ing.series.Load())

	err := push(t, ing, "ws-a", ts("up", "a", prompb.Sample{Timestamp: now + 1, Value: 2}), ts("up", "new", prompb.Sample{Timestamp: now + 1, Value: 2}))
	require.Equal(t, http.StatusServiceUnavailable, apierror.StatusOf(err))
	require.ErrorContains(t, err, "exceeded the allowed number of in-memory series (limit: 2, -ingester.instance-limits.max-series)")
	got := read(t, ing, "ws-a")
	require.Len(t, got[`{__name__="up", job="a"}`], 2, "the existing series took its sample")
	require.NotContains(t, got, `{__name__="up", job="new"}`)
}

func TestInstanceInflightLimit(t *testing.T) {
	cfg := testConfig()
	cfg.InstanceLimits.MaxInflightPushRequests = 1
	ing := startIngester(t, cfg, t.TempDir(), newKV(t))
	ing.inflightPushes.Store(1) // one push is being appended
	err := push(t, ing, "ws-a", ts("up", "a", prompb.Sample{Timestamp: 1, Value: 1}))
	require.Equal(t, http.StatusServiceUnavailable, apierror.StatusOf(err))
	require.ErrorContains(t, err, "-ingester.instance-limits.max-inflight-push-requests")
	ing.inflightPushes.Store(0)
	require.NoError(t, push(t, ing, "ws-a", ts("up", "a", prompb.Sample{Timestamp: 1, Value: 1})))
}

// TestFailedStartLeavesNothingRunning: an ingester whose start fails after
// its WAL replay and its joining the ring (it cannot turn ACTIVE) has, by
// the time the start returned, stopped its lifecycler and closed its
// TSDBs: no goroutine of it runs, and a new ingester opens the same data.
func TestFailedStartLeavesNothingRunning(t *testing.T) {
	leaks := goleak.IgnoreCurrent() // what runs before the test
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	dir, store := t.TempDir(), ringtest.NewKV(t)
	ing := startIngester(t, testConfig(), dir, store)
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-1", ts("up", "a", prompb.Sample{Timestamp: now, Value: 1})))
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))

	failing, err := New(testConfig(), dir, 9095, testBucket(t, dir), ringmember.Store{Client: ringtest.RefuseActive(store, "ingester-test")}, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, failing.StartAsync(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.ErrorContains(t, failing.AwaitTerminated(ctx), "refuses to make ingester-test ACTIVE")
	require.Equal(t, services.Terminated, failing.lifecycler.State(), "the lifecycler is stopped")
	require.Equal(t, ring.LEAVING, ringtest.Instances(t, store, RingKey)["ingester-test"], "it left (an ingester stays in the ring as LEAVING)")
	require.Empty(t, failing.openDBs(), "the TSDB it replayed is closed")

	again := startIngester(t, testConfig(), dir, store)
	require.NoError(t, push(t, again, "ws-1", ts("up", "a", prompb.Sample{Timestamp: now + 1000, Value: 2})), "the data is free for the next ingester")
	require.Len(t, read(t, again, "ws-1"), 1)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), again))
}
