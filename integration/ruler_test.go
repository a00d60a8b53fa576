package integration

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestRecordingRuleIsWrittenBack: a recording rule of a workspace's rule
// groups namespace is evaluated by the ruler over the workspace's series,
// and its results are written back into the workspace, queryable there and
// nowhere else.
func TestRecordingRuleIsWrittenBack(t *testing.T) {
	v := startMonolith(t, t.TempDir(), "-ruler.poll-interval=200ms", "-ruler.min-evaluation-interval=1s")
	base := v.BaseURL()
	ws, other := createWorkspace(t, base, "rules"), createWorkspace(t, base, "other")
	ctx := context.Background()
	now := time.Now()
	for _, w := range []string{ws, other} {
		_, err := remoteWriter(t, workspaceURL(base, w)+"/api/v1/remote_write").Store(ctx, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			series("up", map[string]string{"job": "a"}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 1}),
			series("up", map[string]string{"job": "b"}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 1}),
		}}), 0)
		require.NoError(t, err)
	}

	createNamespace(t, base, ws, "recording", `groups:
  - name: sums
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum(up)
`)

	api := promClient(t, workspaceURL(base, ws))
	require.Eventually(t, func() bool {
		val, _, _, err := api.Query(ctx, "job:up:sum", time.Now())
		vec, ok := val.(model.Vector)
		return err == nil && ok && len(vec) == 1 && vec[0].Value == 2
	}, 20*time.Second, 100*time.Millisecond, "the rule's result is queryable in its workspace")
	val, _, _, err := promClient(t, workspaceURL(base, other)).Query(ctx, "job:up:sum", time.Now())
	require.NoError(t, err)
	require.Empty(t, val.(model.Vector), "and only there")

	// Prometheus's rules API, read by Prometheus's client, shows the group
	// with its rule's health; the other workspace has none.
	rules, err := api.Rules(ctx, nil)
	require.NoError(t, err)
	require.Len(t, rules.Groups, 1)
	g := rules.Groups[0]
	require.Equal(t, "sums", g.Name)
	require.Equal(t, "recording", g.File, "a group's file is its namespace")
	require.Equal(t, 1.0, g.Interval)
	require.Len(t, g.Rules, 1)
	rec, ok := g.Rules[0].(promv1.RecordingRule)
	require.True(t, ok)
	require.Equal(t, "job:up:sum", rec.Name)
	require.EqualValues(t, promv1.RuleHealthGood, rec.Health)
	rules, err = promClient(t, workspaceURL(base, other)).Rules(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, rules.Groups)
}

// TestAlertStateSurvivesARestart: an alert pending when the ruler restarts
// fires when its for: ends, counted from when it first became pending
// before the restart (ALERTS_FOR_STATE, written back into the workspace,
// is read again), not from the restart.
func TestAlertStateSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	flags := []string{"-ruler.poll-interval=200ms", "-ruler.min-evaluation-interval=1s", "-ruler.for-grace-period=1s"}
	v := startMonolith(t, dir, flags...)
	base := v.BaseURL()
	ws := createWorkspace(t, base, "restart")
	ctx := context.Background()
	writeValue := func(base string) {
		_, err := remoteWriter(t, workspaceURL(base, ws)+"/api/v1/remote_write").Store(ctx, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			series("test_value", nil, prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1}),
		}}), 0)
		require.NoError(t, err)
	}
	writeValue(base)
	createNamespace(t, base, ws, "alerts", `groups:
  - name: g
    interval: 1s
    rules:
      - alert: Held
        expr: test_value > 0
        for: 20s
`)
	api := promClient(t, workspaceURL(base, ws))
	alertIs := func(api promv1.API, state string) bool {
		val, _, _, err := api.Query(ctx, `ALERTS{alertname="Held",alertstate="`+state+`"}`, time.Now())
		vec, ok := val.(model.Vector)
		return err == nil && ok && len(vec) == 1
	}
	require.Eventually(t, func() bool { return alertIs(api, "pending") }, 20*time.Second, 100*time.Millisecond)
	since := time.Now()
	time.Sleep(10 * time.Second) // half its for:, ALERTS_FOR_STATE written each second
	require.NoError(t, v.Stop())

	v = startMonolith(t, dir, flags...)
	base = v.BaseURL()
	writeValue(base)
	api = promClient(t, workspaceURL(base, ws))
	require.Eventually(t, func() bool { return alertIs(api, "firing") }, 40*time.Second, 200*time.Millisecond)
	require.Less(t, time.Since(since), 26*time.Second, "fired 20 s after it became pending, not 20 s after the restart (over 30 s)")
}

// TestWorkspaceRuleQueryOffset: ruleQueryOffsetInSeconds of a workspace's
// configuration (UpdateWorkspaceConfiguration, through the AWS SDK) moves
// its rules' evaluations that far back: a rule recording time() writes
// samples ten minutes old, stamped with the time they were evaluated at. A
// workspace without it evaluates at the present, and the bounds are AMP's.
func TestWorkspaceRuleQueryOffset(t *testing.T) {
	v := startMonolith(t, t.TempDir(), "-ruler.poll-interval=200ms", "-ruler.min-evaluation-interval=1s")
	base := v.BaseURL()
	ctx := context.Background()
	c := ampClient(base)
	late, plain := createWorkspace(t, base, "late"), createWorkspace(t, base, "plain")

	_, err := c.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(late), RuleQueryOffsetInSeconds: aws.Int32(600)})
	require.NoError(t, err)
	cfg, err := c.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(late)})
	require.NoError(t, err)
	require.Equal(t, int32(600), aws.ToInt32(cfg.WorkspaceConfiguration.RuleQueryOffsetInSeconds))
	cfg, err = c.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(plain)})
	require.NoError(t, err)
	require.Nil(t, cfg.WorkspaceConfiguration.RuleQueryOffsetInSeconds)
	for _, bad := range []int32{-1, 86401} {
		_, err = c.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(late), RuleQueryOffsetInSeconds: aws.Int32(bad)})
		var invalid *types.ValidationException
		require.ErrorAs(t, err, &invalid, "%d", bad)
		require.Equal(t, "ruleQueryOffsetInSeconds", *invalid.FieldList[0].Name)
	}

	const rules = `groups:
  - name: clock
    interval: 1s
    rules:
      - record: evaluated_at
        expr: vector(time())
`
	for _, ws := range []string{late, plain} {
		createNamespace(t, base, ws, "clock", rules)
	}
	// newest reads a workspace's newest evaluated_at sample of the last half
	// hour: its timestamp and its value (the time it was evaluated at).
	newest := func(ws string) (model.Time, float64, bool) {
		val, _, _, err := promClient(t, workspaceURL(base, ws)).Query(ctx, "evaluated_at[30m]", time.Now())
		require.NoError(t, err)
		m := val.(model.Matrix)
		if len(m) != 1 || len(m[0].Values) == 0 {
			return 0, 0, false
		}
		p := m[0].Values[len(m[0].Values)-1]
		return p.Timestamp, float64(p.Value), true
	}
	for ws, offset := range map[string]time.Duration{late: 10 * time.Minute, plain: 0} {
		var ts model.Time
		var value float64
		require.Eventually(t, func() bool {
			var ok bool
			ts, value, ok = newest(ws)
			return ok
		}, 20*time.Second, 100*time.Millisecond, "%s: the rule's samples", ws)
		behind := time.Since(ts.Time())
		require.GreaterOrEqual(t, behind, offset, "%s: evaluated %s back", ws, behind)
		require.Less(t, behind, offset+10*time.Second, "%s: evaluated %s back", ws, behind)
		require.InDelta(t, float64(ts)/1000, value, 0.001, "%s: stamped with the time it was evaluated at", ws)
	}
}
