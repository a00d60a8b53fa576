package ingester

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
)

type fakeLabelSets struct {
	mu     sync.Mutex
	limits map[string][]LabelSetLimit
}

func (f *fakeLabelSets) LabelSetLimits(_ context.Context, ws string) ([]LabelSetLimit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limits[ws], nil
}

func (f *fakeLabelSets) set(ws string, l []LabelSetLimit) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits[ws] = l
}

// TestLabelSetLimits: limitsPerLabelSet caps the series carrying a label
// set, and the default bucket those matching none; samples of existing
// series are stored; changed limits count the series already in the head.
func TestLabelSetLimits(t *testing.T) {
	dir := t.TempDir()
	src := &fakeLabelSets{limits: map[string][]LabelSetLimit{
		"ws-1": {{Labels: map[string]string{"job": "api"}, MaxSeries: 2}, {Labels: map[string]string{}, MaxSeries: 3}},
	}}
	ing, err := New(testConfig(), dir, 9095, testBucket(t, dir), ringmember.Store{Client: newKV(t)}, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	ing.SetLabelSetLimits(src)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), ing) })
	now := time.Now().UnixMilli()
	sample := func(i int) prompb.Sample { return prompb.Sample{Timestamp: now + int64(i), Value: 1} }

	require.NoError(t, push(t, ing, "ws-1", ts("a", "api", sample(0)), ts("b", "api", sample(0))))
	err = push(t, ing, "ws-1", ts("c", "api", sample(1)), ts("a", "api", sample(1)))
	require.Equal(t, apierror.BadData, apierror.CauseOf(err))
	require.ErrorContains(t, err, `per-labelset series limit of 2 exceeded for label set {job="api"}`)
	require.ErrorContains(t, err, "1 sample(s) rejected")
	require.Len(t, read(t, ing, "ws-1")[`{__name__="a", job="api"}`], 2, "the existing series took its sample")

	// The default bucket: series of no listed label set.
	for i := 0; i < 3; i++ {
		require.NoError(t, push(t, ing, "ws-1", ts(fmt.Sprint("d", i), "db", sample(0))))
	}
	require.ErrorContains(t, push(t, ing, "ws-1", ts("d3", "db", sample(0))), "per-labelset series limit of 3 exceeded for label set {}")
	require.NoError(t, push(t, ing, "ws-2", ts("c", "api", sample(0))), "other workspaces have their own limits")

	// Raised: the series already in the head count against the new limit.
	src.set("ws-1", []LabelSetLimit{{Labels: map[string]string{"job": "api"}, MaxSeries: 3}})
	ing.refreshSettings(context.Background())
	require.NoError(t, push(t, ing, "ws-1", ts("c", "api", sample(2))))
	require.ErrorContains(t, push(t, ing, "ws-1", ts("e", "api", sample(2))), "limit of 3 exceeded")
	require.NoError(t, push(t, ing, "ws-1", ts("d3", "db", sample(2))), "no default bucket any more")

	// maxSeries 0 (or none) is no limit, as in AMP.
	src.set("ws-1", []LabelSetLimit{{Labels: map[string]string{"job": "api"}, MaxSeries: 0}, {Labels: map[string]string{}}})
	ing.refreshSettings(context.Background())
	require.NoError(t, push(t, ing, "ws-1", ts("f", "api", sample(3)), ts("g", "web", sample(3))))

	// An unlimited entry still claims its series from the default bucket.
	src.set("ws-1", []LabelSetLimit{{Labels: map[string]string{"job": "api"}}, {Labels: map[string]string{}, MaxSeries: 5}})
	ing.refreshSettings(context.Background())
	require.NoError(t, push(t, ing, "ws-1", ts("h", "api", sample(4)), ts("i", "api", sample(4))), "job=api has no limit")
	require.ErrorContains(t, push(t, ing, "ws-1", ts("j", "web", sample(4))), "limit of 5 exceeded for label set {}", "the default bucket holds d0-d3 and g, not the api series")

	// Removed: no limit.
	src.set("ws-1", nil)
	ing.refreshSettings(context.Background())
	require.NoError(t, push(t, ing, "ws-1", ts("e", "api", sample(3))))
}
