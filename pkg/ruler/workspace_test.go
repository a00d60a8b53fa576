package ruler

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
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

// sentAlerts records the alerts sent, by workspace.
type sentAlerts struct {
	mu   sync.Mutex
	sent map[string][]*rules.Alert
}

func (s *sentAlerts) add(ws string, as []*rules.Alert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent == nil {
		s.sent = map[string][]*rules.Alert{}
	}
	s.sent[ws] = append(s.sent[ws], as...)
}

func (s *sentAlerts) of(ws string) []*rules.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*rules.Alert(nil), s.sent[ws]...)
}

// testOptions are a workspace's rules options for the tests: Prometheus's
// engine over queryable, samples pushed to pusher, alerts handed to sent.
func testOptions(queryable storage.Queryable, pusher Pusher, sent func(ws string, as []*rules.Alert)) workspaceOptions {
	return workspaceOptions{
		engine:    promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute}),
		queryable: queryable,
		pusher:    pusher,
		notify: func(ws string) (rules.NotifyFunc, func()) {
			return func(_ context.Context, _ string, as ...*rules.Alert) { sent(ws, as) }, func() {}
		},
		interval:    time.Second,
		queryOffset: func(string) time.Duration { return 0 },
		resendDelay: time.Second,
		logger:      slog.New(slog.DiscardHandler),
	}
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
	alerts := &sentAlerts{}
	w := newWorkspaceRules("ws-1", testOptions(st, pusher, alerts.add))
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
	require.Eventually(t, func() bool { return len(alerts.of("ws-1")) >= 2 }, 10*time.Second, 50*time.Millisecond, "both series fire Down")
	require.Len(t, w.manager.RuleGroups(), 1)
	require.Equal(t, "ns", w.manager.RuleGroups()[0].File(), "the namespace is the group's file")
}

// TestTemplateQueriesAreBounded: a query an alert's template builds at run
// time, here from the alert's own label (whose value no check of the rules
// file parses as PromQL), is refused before it is parsed when it chains
// more binary operators than a rule may; the alert still fires:
// the rule itself is unharmed, and a modest query still runs.
func TestTemplateQueriesAreBounded(t *testing.T) {
	hostile := strings.Repeat("vector(1) + ", 5000) + "vector(1)"
	var queried []string
	var mu sync.Mutex
	q := boundedQueries(func(_ context.Context, expr string, _ time.Time) (promql.Vector, error) {
		mu.Lock()
		defer mu.Unlock()
		queried = append(queried, expr)
		return promql.Vector{{F: 7}}, nil
	})
	_, err := q(context.Background(), hostile, time.Now())
	require.ErrorContains(t, err, "binary operators")
	v, err := q(context.Background(), "vector(1) + vector(2)", time.Now())
	require.NoError(t, err)
	require.Len(t, v, 1)
	require.Equal(t, []string{"vector(1) + vector(2)"}, queried, "the hostile query never reached the engine")

	// Wired into a workspace's rules: the template's query is refused, the
	// alert still fires, its annotation saying why (Prometheus's text for a
	// template that fails).
	alerts := &sentAlerts{}
	w := newWorkspaceRules("ws-1", testOptions(teststorage.New(t), &fakePusher{}, alerts.add))
	defer w.stop()
	require.NoError(t, w.update([]Namespace{{Name: "ns", Groups: groupsOf(t, `
groups:
  - name: g
    interval: 1s
    rules:
      - alert: Costly
        expr: label_replace(vector(1), "q", "`+hostile+`", "", "")
        annotations:
          summary: 'before {{ with query $labels.q }}{{ . | first | value }}{{ end }} after'
`)}}, time.Minute))
	require.Eventually(t, func() bool { return len(alerts.of("ws-1")) > 0 }, 10*time.Second, 50*time.Millisecond, "the alert fires")
	summary := alerts.of("ws-1")[0].Annotations.Get("summary")
	require.Contains(t, summary, "binary operators", "the template's query refused: %s", summary)
}
