package ruler

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/vigil-metrics/vigil/pkg/push"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// fakePusher records what is pushed, by workspace.
type fakePusher struct {
	mu     sync.Mutex
	pushed map[string][]prompb.WriteRequest
}

func (p *fakePusher) Push(ctx context.Context, req *push.Request) error {
	ws, err := tenant.ID(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pushed == nil {
		p.pushed = map[string][]prompb.WriteRequest{}
	}
	p.pushed[ws] = append(p.pushed[ws], req.WriteRequest)
	req.Release()
	return nil
}

func (p *fakePusher) of(ws string) []prompb.WriteRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]prompb.WriteRequest(nil), p.pushed[ws]...)
}

func groupsOf(t *testing.T, text string) []rulefmt.RuleGroup {
	t.Helper()
	var rgs rulefmt.RuleGroups
	require.NoError(t, yaml.Unmarshal([]byte(text), &rgs))
	return rgs.Groups
}

// TestWorkspaceRulesRecordAndAlert: a workspace's recording rule reads its
// series and pushes its result into the workspace; an alerting rule's
// alert goes to the workspace's notifier.
func TestWorkspaceRulesRecordAndAlert(t *testing.T) {
	st := teststorage.New(t)
	app := st.Appender(context.Background())
	now := time.Now()
	for _, job := range []string{"a", "b"} {
		_, err := app.Append(0, labels.FromStrings("__name__", "up", "job", job), now.Add(-10*time.Second).UnixMilli(), 0)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())

	pusher := &fakePusher{}
	var mu sync.Mutex
	alerts := map[string][]*rules.Alert{}
	w := newWorkspaceRules("ws-1", workspaceOptions{
		engine:    promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute}),
		queryable: st,
		pusher:    pusher,
		notify: func(ws string) (rules.NotifyFunc, func()) {
			return func(_ context.Context, _ string, as ...*rules.Alert) {
				mu.Lock()
				defer mu.Unlock()
				alerts[ws] = append(alerts[ws], as...)
			}, func() {}
		},
		interval:    time.Second,
		queryOffset: func(string) time.Duration { return 0 },
		resendDelay: time.Second,
		logger:      slog.New(slog.DiscardHandler),
	})
	defer w.stop()
	require.NoError(t, w.update([]Namespace{{Name: "ns", Groups: groupsOf(t, `
groups:
  - name: g
    interval: 1s
    rules:
      - record: job:up:count
        expr: count(up)
      - alert: Down
        expr: up == 0
`)}}, time.Minute))

	require.Eventually(t, func() bool { return len(pusher.of("ws-1")) > 0 }, 10*time.Second, 50*time.Millisecond)
	req := pusher.of("ws-1")[0]
	var recorded []float64
	for _, ts := range req.Timeseries {
		if model.LabelValue(ts.Labels[0].Value) == "job:up:count" {
			recorded = append(recorded, ts.Samples[0].Value)
		}
	}
	require.Equal(t, []float64{2}, recorded, "count(up) recorded into the workspace")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(alerts["ws-1"]) >= 2
	}, 10*time.Second, 50*time.Millisecond, "both series fire Down")
	require.Len(t, w.manager.RuleGroups(), 1)
	require.Equal(t, "ns", w.manager.RuleGroups()[0].File(), "the namespace is the group's file")
}
