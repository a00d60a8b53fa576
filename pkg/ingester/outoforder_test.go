package ingester

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
)

// windows is a settable OutOfOrderWindows.
type windows struct {
	mu sync.Mutex
	w  map[string]time.Duration
}

func (f *windows) OutOfOrderTimeWindow(_ context.Context, ws string) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.w[ws], nil
}

func (f *windows) set(ws string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.w[ws] = d
}

// TestOutOfOrderWindowPerWorkspace: a workspace with a 10-minute window
// stores samples 5 minutes late, and queries see them in order; one
// without refuses them as sample-out-of-order (400); a sample later than
// the window is refused the same way. Exact duplicates are no errors, a
// new value at a stored timestamp is new-value-for-timestamp. A window set
// while the TSDB is open takes effect at the next refresh.
func TestOutOfOrderWindowPerWorkspace(t *testing.T) {
	dir := t.TempDir()
	src := &windows{w: map[string]time.Duration{"ws-ooo": 10 * time.Minute}}
	ing, err := New(testConfig(), dir, 9095, testBucket(t, dir), ringmember.Store{Client: newKV(t)}, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	ing.SetOutOfOrderWindows(src)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), ing) })

	now := time.Now().UnixMilli()
	late := now - (5 * time.Minute).Milliseconds()
	for _, ws := range []string{"ws-ooo", "ws-plain"} {
		require.NoError(t, push(t, ing, ws, ts("up", "api", prompb.Sample{Timestamp: now, Value: 1})))
	}

	require.NoError(t, push(t, ing, "ws-ooo", ts("up", "api", prompb.Sample{Timestamp: late, Value: 0.5})))
	require.Equal(t, []prompb.Sample{{Timestamp: late, Value: 0.5}, {Timestamp: now, Value: 1}}, read(t, ing, "ws-ooo")[`{__name__="up", job="api"}`])

	err = push(t, ing, "ws-plain", ts("up", "api", prompb.Sample{Timestamp: late, Value: 0.5}))
	require.Equal(t, http.StatusBadRequest, apierror.StatusOf(err))
	require.Equal(t, apierror.IDSampleOutOfOrder, apierror.From(err).ID)

	tooLate := now - (11 * time.Minute).Milliseconds()
	err = push(t, ing, "ws-ooo", ts("up", "api", prompb.Sample{Timestamp: tooLate, Value: 0}))
	require.Equal(t, http.StatusBadRequest, apierror.StatusOf(err))
	require.Equal(t, apierror.IDSampleOutOfOrder, apierror.From(err).ID, err.Error())
	require.ErrorContains(t, err, "out-of-order window")

	require.NoError(t, push(t, ing, "ws-ooo", ts("up", "api", prompb.Sample{Timestamp: now, Value: 1})), "an exact duplicate is no error")
	err = push(t, ing, "ws-ooo", ts("up", "api", prompb.Sample{Timestamp: now, Value: 2}))
	require.Equal(t, apierror.IDSampleDuplicate, apierror.From(err).ID, err.Error())

	// The window of an open TSDB changes at the next refresh.
	src.set("ws-plain", 10*time.Minute)
	ing.refreshSettings(context.Background())
	require.NoError(t, push(t, ing, "ws-plain", ts("up", "api", prompb.Sample{Timestamp: late, Value: 0.5})))
	src.set("ws-ooo", 0)
	ing.refreshSettings(context.Background())
	err = push(t, ing, "ws-ooo", ts("up", "api", prompb.Sample{Timestamp: late + 1, Value: 0.5}))
	require.Equal(t, apierror.IDSampleOutOfOrder, apierror.From(err).ID)
}

// TestOutOfOrderSamplesAreFlushed: a flush cuts the out-of-order samples
// into a block too, uploaded with the others: after it the head holds none
// and the blocks hold every sample.
func TestOutOfOrderSamplesAreFlushed(t *testing.T) {
	dir := t.TempDir()
	ing, err := New(testConfig(), dir, 9095, testBucket(t, dir), ringmember.Store{Client: newKV(t)}, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	ing.SetOutOfOrderWindows(&windows{w: map[string]time.Duration{"ws-ooo": 10 * time.Minute}})
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), ing) })

	now := time.Now().UnixMilli()
	late := now - (5 * time.Minute).Milliseconds()
	require.NoError(t, push(t, ing, "ws-ooo", ts("up", "api", prompb.Sample{Timestamp: now, Value: 1})))
	require.NoError(t, push(t, ing, "ws-ooo", ts("up", "api", prompb.Sample{Timestamp: late, Value: 0.5})))
	require.NoError(t, ing.Flush(context.Background(), "ws-ooo"))

	u, err := ing.acquire(context.Background(), "ws-ooo", false)
	require.NoError(t, err)
	defer u.release()
	require.Zero(t, u.db.Head().NumSeries(), "the head is cut")
	require.Len(t, u.db.Blocks(), 2, "one block of in-order samples, one of out-of-order samples")
	require.Equal(t, []prompb.Sample{{Timestamp: late, Value: 0.5}, {Timestamp: now, Value: 1}}, read(t, ing, "ws-ooo")[`{__name__="up", job="api"}`])
}

// TestIngesterDiscardReasons: the reasons the ingesters discard samples
// for, with AMP's reason, the exact message, the status and the counter.
func TestIngesterDiscardReasons(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	stamp := now.Format(time.RFC3339Nano)
	for _, tc := range []struct {
		reason, message string
		second          prompb.Sample
	}{
		{"sample-out-of-order", "1 sample(s) rejected: the sample is older than the latest sample of its series (out of order); first rejected sample: timestamp 2026-12-07T09:59:59Z, series {__name__=\"up\", job=\"api\"} (err-vigil-sample-out-of-order)",
			prompb.Sample{Timestamp: now.Add(-time.Second).UnixMilli(), Value: 1}},
		{"new-value-for-timestamp", "1 sample(s) rejected: the series already has a different value at this timestamp (duplicate sample for timestamp); first rejected sample: timestamp " + stamp + ", series {__name__=\"up\", job=\"api\"} (err-vigil-sample-duplicate-timestamp)",
			prompb.Sample{Timestamp: now.UnixMilli(), Value: 2}},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			dir := t.TempDir()
			reg := prometheus.NewRegistry()
			ing, err := New(testConfig(), dir, 9095, testBucket(t, dir), ringmember.Store{Client: newKV(t)}, reg, log.NewNopLogger())
			require.NoError(t, err)
			require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
			t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), ing) })
			require.NoError(t, push(t, ing, "ws-1", ts("up", "api", prompb.Sample{Timestamp: now.UnixMilli(), Value: 1})))
			err = push(t, ing, "ws-1", ts("up", "api", tc.second))
			require.Equal(t, http.StatusBadRequest, apierror.StatusOf(err))
			require.EqualError(t, err, tc.message)
			require.Equal(t, 1.0, testutil.ToFloat64(ing.metrics.discardedSamples.WithLabelValues("ws-1", tc.reason)))
		})
	}
}

// TestOutOfOrderWindowChangesWhilePushing: turning the window on while
// pushes commit gives the head its out-of-order WAL under the append lock
// (go test -race found commits reading it unlocked before the fix).
func TestOutOfOrderWindowChangesWhilePushing(t *testing.T) {
	dir := t.TempDir()
	src := &windows{w: map[string]time.Duration{}}
	ing, err := New(testConfig(), dir, 9095, testBucket(t, dir), ringmember.Store{Client: newKV(t)}, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	ing.SetOutOfOrderWindows(src)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), ing) })
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-1", ts("up", "api", prompb.Sample{Timestamp: now, Value: 1})))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 200; i++ {
			_ = push(t, ing, "ws-1", ts("up", "api", prompb.Sample{Timestamp: now + int64(i), Value: 1}))
		}
	}()
	for i := 0; i < 20; i++ {
		src.set("ws-1", time.Duration(i%2)*10*time.Minute)
		ing.refreshSettings(context.Background())
	}
	<-done
}
