package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// amNotification is one alert of a notification the ruler sent, as
// Alertmanager's v2 API receives it.
type amNotification struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	received    time.Time
}

// fakeAlertmanager records every alert posted to /api/v2/alerts.
type fakeAlertmanager struct {
	mu     sync.Mutex
	alerts []amNotification
}

func (f *fakeAlertmanager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" {
		http.NotFound(w, r)
		return
	}
	var in []amNotification
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	f.mu.Lock()
	for _, a := range in {
		a.received = now
		f.alerts = append(f.alerts, a)
	}
	f.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (f *fakeAlertmanager) got() []amNotification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]amNotification(nil), f.alerts...)
}

// The alert generator specification's settings, scaled down: a group
// interval of 2 s, a resend delay of 3 s (or 1 s, below the interval), for:
// 4 s.
const (
	specInterval = 2 * time.Second
	specResend   = 3 * time.Second
	specFor      = 4 * time.Second
)

// runAlertGeneratorSpec checks the ruler against prometheus/compliance's
// alert_generator specification: evaluation on the group's grid, the
// ALERTS and ALERTS_FOR_STATE series, pending then firing after for:,
// nothing sent while pending, firing alerts re-sent every resend delay
// (at the first evaluation after it) with endsAt 4 x max(resend delay,
// interval) after the evaluation, templated annotations, and resolved
// alerts sent with endsAt at their resolution and re-sent for 15 minutes
// (checked to the end when retention is set; that takes 16 minutes).
func runAlertGeneratorSpec(t *testing.T, resend time.Duration, retention bool) {
	am := &fakeAlertmanager{}
	amSrv := httptest.NewServer(am)
	t.Cleanup(amSrv.Close)
	v := startMonolith(t, t.TempDir(), "-ruler.poll-interval=200ms", "-ruler.min-evaluation-interval=1s",
		"-ruler.resend-delay="+resend.String(), "-ruler.alertmanager-url="+amSrv.URL)
	base := v.BaseURL()
	ws := createWorkspace(t, base, "alertgen")
	ctx := context.Background()
	rw := remoteWriter(t, workspaceURL(base, ws)+"/api/v1/remote_write")
	var value float64 = 5
	var valueMu sync.Mutex
	stopWriting := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			valueMu.Lock()
			val := value
			valueMu.Unlock()
			_, _ = rw.Store(ctx, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				series("spec_value", map[string]string{"instance": "a"}, prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: val}),
			}}), 0)
			select {
			case <-stopWriting:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(stopWriting); <-writerDone })

	createNamespace(t, base, ws, "spec", `groups:
  - name: spec
    interval: 2s
    rules:
      - alert: SpecAlert
        expr: spec_value > 10
        for: 4s
        labels: {severity: page}
        annotations: {summary: "value {{ $value }} of {{ $labels.instance }}"}
`)
	api := promClient(t, workspaceURL(base, ws))
	raw := func(selector string) []model.SamplePair {
		t.Helper()
		val, _, _, err := api.Query(ctx, selector+"[30m]", time.Now())
		require.NoError(t, err)
		m := val.(model.Matrix)
		if len(m) == 0 {
			return nil
		}
		require.Len(t, m, 1, selector)
		return m[0].Values
	}
	firing := func() []amNotification {
		var out []amNotification
		for _, a := range am.got() {
			if a.EndsAt.After(a.received) {
				out = append(out, a)
			}
		}
		return out
	}

	// The group runs, and has restored its alerts' state (which the rules
	// manager does after its second evaluation, writing no ALERTS until
	// then) before the alert's condition holds.
	require.Eventually(t, func() bool {
		rules, err := api.Rules(ctx, nil)
		if err != nil || len(rules.Groups) != 1 || len(rules.Groups[0].Rules) != 1 {
			return false
		}
		r, ok := rules.Groups[0].Rules[0].(promv1.AlertingRule)
		return ok && !r.LastEvaluation.IsZero()
	}, 30*time.Second, 100*time.Millisecond)
	time.Sleep(3 * specInterval)
	valueMu.Lock()
	value = 15
	valueMu.Unlock()

	// Pending, then firing for: later; re-sent every resend delay.
	require.Eventually(t, func() bool { return len(firing()) >= 3 }, 60*time.Second, 100*time.Millisecond)
	pending := raw(`ALERTS{alertname="SpecAlert",alertstate="pending"}`)
	fired := raw(`ALERTS{alertname="SpecAlert",alertstate="firing"}`)
	require.NotEmpty(t, pending)
	require.NotEmpty(t, fired)
	activeAt := pending[0].Timestamp.Time()
	require.Equal(t, specFor, fired[0].Timestamp.Time().Sub(activeAt), "firing at the first evaluation for: after the alert became pending")
	require.Len(t, pending, int(specFor/specInterval), "pending at each evaluation until then")
	for _, s := range append(append([]model.SamplePair{}, pending...), fired...) {
		require.Equal(t, model.SampleValue(1), s.Value)
	}
	for i := 1; i < len(fired); i++ {
		require.Equal(t, specInterval, fired[i].Timestamp.Time().Sub(fired[i-1].Timestamp.Time()), "one evaluation per interval, on the group's grid")
	}
	forState := raw(`ALERTS_FOR_STATE{alertname="SpecAlert"}`)
	require.NotEmpty(t, forState)
	require.Equal(t, model.SampleValue(activeAt.Unix()), forState[len(forState)-1].Value, "ALERTS_FOR_STATE holds when it became pending")
	val, _, _, err := api.Query(ctx, `ALERTS{alertname="SpecAlert"}`, time.Now())
	require.NoError(t, err)
	require.Equal(t, model.LabelSet{"__name__": "ALERTS", "alertname": "SpecAlert", "alertstate": "firing", "instance": "a", "severity": "page"}, model.LabelSet(val.(model.Vector)[0].Metric))

	firedAt := fired[0].Timestamp.Time()
	sent := firing()
	require.False(t, am.got()[0].received.Before(firedAt), "nothing is sent while pending")
	delta := max(resend, specInterval)
	for i, a := range sent {
		require.Equal(t, map[string]string{"alertname": "SpecAlert", "instance": "a", "severity": "page"}, a.Labels)
		require.Equal(t, "value 15 of a", a.Annotations["summary"])
		require.True(t, a.StartsAt.Equal(firedAt), "startsAt is when it fired: %s, %s", a.StartsAt, firedAt)
		evaluated := a.EndsAt.Add(-4 * delta)
		require.Zero(t, evaluated.Sub(activeAt)%specInterval, "endsAt is an evaluation + 4 x max(resend delay, interval)")
		require.WithinDuration(t, a.received, evaluated, 3*time.Second, "sent at that evaluation")
		if i > 0 {
			gap := a.EndsAt.Sub(sent[i-1].EndsAt)
			// Re-sent at the first evaluation at least the resend delay
			// after the last send.
			require.Equal(t, resend.Truncate(specInterval)+specInterval, gap, "re-sent every resend delay, at an evaluation")
		}
	}

	// Resolved: sent with endsAt at the evaluation that resolved it, and
	// re-sent.
	valueMu.Lock()
	value = 5
	valueMu.Unlock()
	changed := time.Now()
	resolvedSent := func() []amNotification {
		var out []amNotification
		for _, a := range am.got() {
			if !a.EndsAt.After(a.received) {
				out = append(out, a)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(resolvedSent()) >= 3 }, 30*time.Second, 100*time.Millisecond)
	res := resolvedSent()
	resolvedAt := res[0].EndsAt
	require.True(t, resolvedAt.After(changed.Add(-time.Second)), "resolved at an evaluation after the value fell")
	require.Zero(t, resolvedAt.Sub(activeAt)%specInterval, "on the group's grid")
	for _, a := range res {
		require.True(t, a.EndsAt.Equal(resolvedAt), "every resolved notification has the same endsAt")
		require.True(t, a.StartsAt.Equal(firedAt))
	}
	val, _, _, err = api.Query(ctx, `ALERTS{alertname="SpecAlert"}`, time.Now())
	require.NoError(t, err)
	require.Empty(t, val.(model.Vector), "the ALERTS series ends when the alert resolves")
	if !retention {
		return
	}
	// Re-sent for 15 minutes after it resolved, then no more.
	time.Sleep(time.Until(resolvedAt.Add(15*time.Minute + 30*time.Second)))
	res = resolvedSent()
	last := res[len(res)-1].received
	require.WithinDuration(t, resolvedAt.Add(15*time.Minute), last, 2*delta, "the last resolved notification, 15 minutes after")
	require.True(t, last.Before(resolvedAt.Add(15*time.Minute+3*time.Second)), "none after")
}

// TestAlertGeneratorSpec runs the alert generator specification up to the
// resolved alert's re-sends (make e2e runs it to their 15 minutes' end).
func TestAlertGeneratorSpec(t *testing.T) { runAlertGeneratorSpec(t, specResend, false) }

// TestAlertGeneratorSpecResendBelowInterval: with a resend delay shorter
// than the interval, firing alerts are sent at every evaluation and endsAt
// is 4 x the interval after it (the max of the two).
func TestAlertGeneratorSpecResendBelowInterval(t *testing.T) {
	runAlertGeneratorSpec(t, specInterval/2, false)
}
