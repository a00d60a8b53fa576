//go:build e2e

package integration

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	amclient "github.com/prometheus/alertmanager/api/v2/client"
	"github.com/prometheus/alertmanager/api/v2/client/alert"
	"github.com/prometheus/alertmanager/api/v2/client/alertgroup"
	"github.com/prometheus/alertmanager/api/v2/client/silence"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/stretchr/testify/require"
)

// compareConfig is one Alertmanager configuration for both: grouping by
// alertname and cluster, a child route for critical alerts grouped by
// cluster, an inhibit rule, a webhook.
const compareConfig = `route:
  receiver: hook
  group_by: [alertname, cluster]
  group_wait: 1s
  group_interval: 1h
  repeat_interval: 1h
  routes:
  - matchers: [severity="critical"]
    receiver: pager
    group_by: [cluster]
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [cluster]
receivers:
- name: hook
  webhook_configs:
  - url: %[1]s
- name: pager
  webhook_configs:
  - url: %[1]s
`

// TestAlertmanagerMatchesDebiansAlertmanager gives Debian's
// prometheus-alertmanager and a workspace's Alertmanager the same
// configuration, silence and alerts, and compares what each answers
// (groups, each alert's state) and what each sends to its webhook.
func TestAlertmanagerMatchesDebiansAlertmanager(t *testing.T) {
	refHook, vigilHook := &webhook{}, &webhook{}
	refSrv, vigilSrv := httptest.NewServer(refHook), httptest.NewServer(vigilHook)
	t.Cleanup(refSrv.Close)
	t.Cleanup(vigilSrv.Close)
	refURL := startAlertmanagerWith(t, fmt.Sprintf(compareConfig, refSrv.URL))
	u, err := url.Parse(refURL)
	require.NoError(t, err)
	ref := amclient.NewHTTPClientWithConfig(strfmt.Default, amclient.DefaultTransportConfig().WithHost(u.Host).WithBasePath("/api/v2").WithSchemes([]string{"http"}))

	v := startMonolith(t, t.TempDir(), "-alertmanager.poll-interval=200ms", "-alertmanager.receivers-firewall-block-private-addresses=false")
	ws := createWorkspace(t, v.BaseURL(), "compare")
	putDefinition(t, v.BaseURL(), ws, asDefinition(fmt.Sprintf(compareConfig, vigilSrv.URL)))
	vig := alertmanagerClient(t, v.BaseURL(), ws)
	waitDefinitionInForce(t, vig)

	starts, ends := strfmt.DateTime(time.Now()), strfmt.DateTime(time.Now().Add(time.Hour))
	name, value, isRegex, isEqual, by, comment := "alertname", "Maintenance", false, true, "test", "planned"
	for _, c := range []*amclient.AlertmanagerAPI{ref, vig} {
		_, err := c.Silence.PostSilences(silence.NewPostSilencesParams().WithSilence(&models.PostableSilence{Silence: models.Silence{
			Matchers: models.Matchers{{Name: &name, Value: &value, IsRegex: &isRegex, IsEqual: &isEqual}},
			StartsAt: &starts, EndsAt: &ends, CreatedBy: &by, Comment: &comment,
		}}))
		require.NoError(t, err)
	}
	var alerts models.PostableAlerts
	for _, a := range []map[string]string{
		{"alertname": "Down", "cluster": "a", "severity": "critical"},
		{"alertname": "Slow", "cluster": "a", "severity": "warning"}, // inhibited by Down
		{"alertname": "Slow", "cluster": "b", "severity": "warning"},
		{"alertname": "Full", "cluster": "b", "severity": "warning"},
		{"alertname": "Full", "cluster": "c", "severity": "warning"}, // inhibited by Down and Lost
		{"alertname": "Down", "cluster": "c", "severity": "critical"},
		{"alertname": "Lost", "cluster": "c", "severity": "critical"},
		{"alertname": "Maintenance", "cluster": "b", "severity": "info"}, // silenced
	} {
		alerts = append(alerts, postableAlert(a))
	}
	for _, c := range []*amclient.AlertmanagerAPI{ref, vig} {
		_, err := c.Alert.PostAlerts(alert.NewPostAlertsParams().WithAlerts(alerts))
		require.NoError(t, err)
	}
	// Four groups notify: hook's Slow/b and Full/b, pager's a and c (Slow/a
	// and Full/c are inhibited, Maintenance silenced).
	deadline := time.Now().Add(30 * time.Second)
	for (len(refHook.messages()) < 4 || len(vigilHook.messages()) < 4) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	require.Len(t, refHook.messages(), 4, "Debian's notified: %v", notifications(refHook.messages()))
	require.Len(t, vigilHook.messages(), 4, "Vigil's notified: %v", notifications(vigilHook.messages()))
	time.Sleep(3 * time.Second) // and nothing more

	require.Equal(t, notifications(refHook.messages()), notifications(vigilHook.messages()), "the same notifications")
	require.Equal(t, groupsOf(t, ref), groupsOf(t, vig), "the same groups")
	require.Equal(t, statesOf(t, ref), statesOf(t, vig), "the same alert states")
}

// notifications are webhook messages as comparable lines: receiver, group
// labels, status and alerts.
func notifications(msgs []webhookMessage) []string {
	var out []string
	for _, m := range msgs {
		var names []string
		for _, a := range m.Alerts {
			names = append(names, a.Labels["alertname"]+"/"+a.Labels["cluster"]+"/"+a.Status)
		}
		slices.Sort(names)
		out = append(out, fmt.Sprintf("%s %v %s %v", m.Receiver, m.GroupLabels, m.Status, names))
	}
	slices.Sort(out)
	return out
}

func groupsOf(t *testing.T, c *amclient.AlertmanagerAPI) []string {
	t.Helper()
	groups, err := c.Alertgroup.GetAlertGroups(alertgroup.NewGetAlertGroupsParams())
	require.NoError(t, err)
	var out []string
	for _, g := range groups.Payload {
		var names []string
		for _, a := range g.Alerts {
			names = append(names, a.Labels["alertname"]+"/"+a.Labels["cluster"]+"/"+*a.Status.State)
		}
		slices.Sort(names)
		out = append(out, fmt.Sprintf("%s %v %v", *g.Receiver.Name, g.Labels, names))
	}
	slices.Sort(out)
	return out
}

func statesOf(t *testing.T, c *amclient.AlertmanagerAPI) []string {
	t.Helper()
	alerts, err := c.Alert.GetAlerts(alert.NewGetAlertsParams())
	require.NoError(t, err)
	var out []string
	for _, a := range alerts.Payload {
		out = append(out, fmt.Sprintf("%s/%s %s silenced=%t inhibited=%t", a.Labels["alertname"], a.Labels["cluster"], *a.Status.State,
			len(a.Status.SilencedBy) > 0, len(a.Status.InhibitedBy) > 0))
	}
	slices.Sort(out)
	return out
}
