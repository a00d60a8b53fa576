package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	amclient "github.com/prometheus/alertmanager/api/v2/client"
	"github.com/prometheus/alertmanager/api/v2/client/alert"
	"github.com/prometheus/alertmanager/api/v2/client/alertgroup"
	"github.com/prometheus/alertmanager/api/v2/client/general"
	"github.com/prometheus/alertmanager/api/v2/client/receiver"
	"github.com/prometheus/alertmanager/api/v2/client/silence"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/stretchr/testify/require"
	"github.com/vigil-metrics/vigil/pkg/vigil"
)

// putDefinition stores a workspace's alert manager definition through the
// API (no signature: the monolith's default auth mode).
func putDefinition(t *testing.T, base, ws, def string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"data": []byte(def)})
	require.NoError(t, err)
	resp, err := http.Post(base+"/workspaces/"+ws+"/alertmanager/definition", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
}

// alertmanagerClient is the Alertmanager v2 API client (amtool's) of a
// workspace.
func alertmanagerClient(t *testing.T, base, ws string) *amclient.AlertmanagerAPI {
	u, err := url.Parse(base)
	require.NoError(t, err)
	return amclient.NewHTTPClientWithConfig(strfmt.Default, amclient.DefaultTransportConfig().
		WithHost(u.Host).WithBasePath("/workspaces/"+ws+"/alertmanager/api/v2").WithSchemes([]string{"http"}))
}

// waitDefinitionInForce waits for the workspace's Alertmanager to answer.
func waitDefinitionInForce(t *testing.T, am *amclient.AlertmanagerAPI) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, err := am.General.GetStatus(general.NewGetStatusParams().WithTimeout(2 * time.Second))
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "the definition never came in force")
}

func postableAlert(labels map[string]string) *models.PostableAlert {
	ls := models.LabelSet{}
	for k, v := range labels {
		ls[k] = v
	}
	return &models.PostableAlert{Alert: models.Alert{Labels: ls}, StartsAt: strfmt.DateTime(time.Now())}
}

// TestAlertmanagerAPI: a workspace's Alertmanager, configured by its alert
// manager definition, answers the v2 API through Alertmanager's own Go
// client (amtool's): alerts are grouped and sent to a webhook, inhibited
// and silenced ones are not; silences are listed, read and expired; the
// receivers, groups and status are there; Mimir's path with X-Scope-OrgID
// answers too, and a workspace without a definition gets a clear 404.
func TestAlertmanagerAPI(t *testing.T) {
	hook := &webhook{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	v := startMonolith(t, t.TempDir(), "-alertmanager.poll-interval=200ms", "-alertmanager.receivers-firewall-block-private-addresses=false")
	base := v.BaseURL()
	ws := createWorkspace(t, base, "am")
	putDefinition(t, base, ws, asDefinition(webhookConfig(hookSrv.URL)+`inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [cluster]
`))
	am := alertmanagerClient(t, base, ws)
	waitDefinitionInForce(t, am)
	ctx := context.Background()

	// A silence first, then the alerts.
	starts, ends := strfmt.DateTime(time.Now()), strfmt.DateTime(time.Now().Add(time.Hour))
	name, value, isRegex, isEqual := "alertname", "Noisy", false, true
	by, comment := "test", "maintenance"
	sil, err := am.Silence.PostSilences(silence.NewPostSilencesParamsWithContext(ctx).WithSilence(&models.PostableSilence{Silence: models.Silence{
		Matchers: models.Matchers{{Name: &name, Value: &value, IsRegex: &isRegex, IsEqual: &isEqual}},
		StartsAt: &starts, EndsAt: &ends, CreatedBy: &by, Comment: &comment,
	}}))
	require.NoError(t, err)
	silenceID := sil.Payload.SilenceID
	require.NotEmpty(t, silenceID)

	_, err = am.Alert.PostAlerts(alert.NewPostAlertsParamsWithContext(ctx).WithAlerts(models.PostableAlerts{
		postableAlert(map[string]string{"alertname": "Down", "severity": "critical", "cluster": "c1"}),
		postableAlert(map[string]string{"alertname": "Slow", "severity": "warning", "cluster": "c1"}),
		postableAlert(map[string]string{"alertname": "Noisy"}),
	}))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return hook.got("firing", "Down") }, 20*time.Second, 100*time.Millisecond)
	time.Sleep(3 * time.Second) // two group intervals more
	require.False(t, hook.got("firing", "Slow"), "an inhibited alert was sent")
	require.False(t, hook.got("firing", "Noisy"), "a silenced alert was sent")

	alerts, err := am.Alert.GetAlerts(alert.NewGetAlertsParamsWithContext(ctx))
	require.NoError(t, err)
	states := map[string]string{}
	for _, a := range alerts.Payload {
		states[a.Labels["alertname"]] = *a.Status.State
		switch a.Labels["alertname"] {
		case "Slow":
			require.NotEmpty(t, a.Status.InhibitedBy)
		case "Noisy":
			require.Equal(t, []string{silenceID}, a.Status.SilencedBy)
		}
	}
	require.Equal(t, map[string]string{"Down": "active", "Slow": "suppressed", "Noisy": "suppressed"}, states)

	groups, err := am.Alertgroup.GetAlertGroups(alertgroup.NewGetAlertGroupsParamsWithContext(ctx))
	require.NoError(t, err)
	require.Len(t, groups.Payload, 3, "one group per alertname")
	receivers, err := am.Receiver.GetReceivers(receiver.NewGetReceiversParamsWithContext(ctx))
	require.NoError(t, err)
	require.Equal(t, "hook", *receivers.Payload[0].Name)
	status, err := am.General.GetStatus(general.NewGetStatusParamsWithContext(ctx))
	require.NoError(t, err)
	require.Contains(t, *status.Payload.Config.Original, "webhook_configs")

	silences, err := am.Silence.GetSilences(silence.NewGetSilencesParamsWithContext(ctx))
	require.NoError(t, err)
	require.Len(t, silences.Payload, 1)
	got, err := am.Silence.GetSilence(silence.NewGetSilenceParamsWithContext(ctx).WithSilenceID(strfmt.UUID(silenceID)))
	require.NoError(t, err)
	require.Equal(t, "active", *got.Payload.Status.State)

	// Expiring the silence lets the silenced alert through.
	_, err = am.Silence.DeleteSilence(silence.NewDeleteSilenceParamsWithContext(ctx).WithSilenceID(strfmt.UUID(silenceID)))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return hook.got("firing", "Noisy") }, 20*time.Second, 100*time.Millisecond)

	// Mimir's path, with the workspace in X-Scope-OrgID.
	req, err := http.NewRequest(http.MethodGet, base+"/alertmanager/api/v2/receivers", nil)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", ws)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// A workspace with no definition.
	other := createWorkspace(t, base, "no-am")
	resp, err = http.Get(base + "/workspaces/" + other + "/alertmanager/api/v2/alerts")
	require.NoError(t, err)
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, body.String(), "no alert manager definition")
}

// TestRulerAlertReachesWebhook: an alerting rule's alert goes from the
// ruler to the workspace's own Alertmanager (no -ruler.alertmanager-url)
// and on to a webhook receiver, firing then resolved.
func TestRulerAlertReachesWebhook(t *testing.T) {
	hook := &webhook{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	v := startMonolith(t, t.TempDir(), "-ruler.poll-interval=200ms", "-ruler.min-evaluation-interval=1s", "-ruler.resend-delay=1s",
		"-alertmanager.poll-interval=200ms", "-alertmanager.receivers-firewall-block-private-addresses=false")
	base := v.BaseURL()
	ws := createWorkspace(t, base, "ruler-am")
	putDefinition(t, base, ws, asDefinition(webhookConfig(hookSrv.URL)))
	waitDefinitionInForce(t, alertmanagerClient(t, base, ws))
	createNamespace(t, base, ws, "alerts", "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: AlwaysOn\n        expr: vector(1)\n        labels: {severity: page}\n")
	require.Eventually(t, func() bool { return hook.got("firing", "AlwaysOn") }, 30*time.Second, 100*time.Millisecond,
		"the ruler's alert reached the webhook through the workspace's Alertmanager")

	// The rule goes away: the ruler sends the alert no more, and the
	// Alertmanager resolves it at the endsAt the ruler gave it.
	req, err := http.NewRequest(http.MethodDelete, base+"/workspaces/"+ws+"/rulegroupsnamespaces/alerts", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Eventually(t, func() bool { return hook.got("resolved", "AlwaysOn") }, 30*time.Second, 100*time.Millisecond)
}

// TestAlertmanagerLimitsAndUsage: a POST of alerts that would take the
// workspace over its alerts limit is refused whole with 400, and the
// usage metrics (AMP's AllAlerts, ActiveAlerts, SuppressedAlerts,
// AlertManagerAlertsReceived, SizeOfAlerts) say what the Alertmanager
// holds and took.
func TestAlertmanagerLimitsAndUsage(t *testing.T) {
	v := startMonolith(t, t.TempDir(), "-alertmanager.poll-interval=200ms", "-alertmanager.max-alerts-count=3")
	base := v.BaseURL()
	ws := createWorkspace(t, base, "am-limits")
	putDefinition(t, base, ws, "alertmanager_config: |\n  route: {receiver: r, group_wait: 1h}\n  receivers: [{name: r}]\n")
	am := alertmanagerClient(t, base, ws)
	waitDefinitionInForce(t, am)
	post := func(names ...string) *http.Response {
		var alerts models.PostableAlerts
		for _, n := range names {
			alerts = append(alerts, postableAlert(map[string]string{"alertname": n}))
		}
		body, err := json.Marshal(alerts)
		require.NoError(t, err)
		resp, err := http.Post(base+"/workspaces/"+ws+"/alertmanager/api/v2/alerts", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		return resp
	}
	resp := post("A", "B", "C", "D")
	var msg bytes.Buffer
	_, _ = msg.ReadFrom(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, msg.String(), "alerts limit reached")
	resp = post("A", "B", "C")
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp = post("A")
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "an alert held again is no new alert")

	require.Eventually(t, func() bool {
		m := adminMetrics(t, v)
		for _, want := range []string{
			`vigil_alertmanager_all_alerts{workspace="` + ws + `"} 3`,
			`vigil_alertmanager_alerts_received_total{workspace="` + ws + `"} 4`,
			`vigil_alertmanager_alerts_refused_total{workspace="` + ws + `"} 4`,
		} {
			if !strings.Contains(m, want) {
				return false
			}
		}
		return strings.Contains(m, `vigil_alertmanager_alerts_size_bytes{workspace="`+ws+`"}`) &&
			strings.Contains(m, `vigil_alertmanager_unprocessed_alerts{workspace="`+ws+`"}`)
	}, 10*time.Second, 100*time.Millisecond, "the usage metrics")
}

// adminMetrics reads a monolith's metrics from its admin listener.
func adminMetrics(t *testing.T, v *vigil.Vigil) string {
	t.Helper()
	resp, err := http.Get(v.AdminURL() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	require.NoError(t, err)
	return b.String()
}
