//go:build e2e

package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/client/alert"
	"github.com/prometheus/alertmanager/api/v2/client/silence"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/stretchr/testify/require"
)

// TestClusterAlertmanagersKillAndRestart runs three alertmanager processes
// (RF 3) beside a cluster. While alerts fire, one is killed with SIGKILL:
// every alert is notified to the webhook exactly once, before and after
// the kill, and a silenced one never. Then all three are stopped and
// started again: the silence is still there, and the alerts sent again
// are not notified again (the notification log survived).
func TestClusterAlertmanagersKillAndRestart(t *testing.T) {
	hook := &webhook{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	amFlags := []string{"-alertmanager.ring.heartbeat-period=500ms", "-alertmanager.ring.heartbeat-timeout=3s",
		"-alertmanager.poll-interval=500ms", "-alertmanager.peer-timeout=5s",
		"-alertmanager.receivers-firewall-block-private-addresses=false"}
	c := startCluster(t, amFlags...)
	var ams []*process
	for _, id := range []string{"am-1", "am-2", "am-3"} {
		p := newProcess(t, id, append(c.common(id), "-target=alertmanager",
			"-alertmanager.ring.instance-id="+id, "-alertmanager.ring.instance-addr=127.0.0.1")...)
		p.join = func() string { return gossipOf(append(c.all(), ams...)...) }
		p.start()
		waitReady(t, p.base())
		ams = append(ams, p)
	}
	waitAlertmanagers := func() {
		require.Eventually(t, func() bool {
			resp, err := http.Get(c.quer.admin() + "/alertmanager/ring")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return countOccurrences(string(b), "ACTIVE") >= 3
		}, 30*time.Second, 200*time.Millisecond, "three alertmanagers in the ring")
	}
	waitAlertmanagers()

	ws := createWorkspace(t, c.dist.base(), "am-cluster")
	putDefinition(t, c.dist.base(), ws, fmt.Sprintf(`alertmanager_config: |
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 1s
    group_interval: 1h
    repeat_interval: 1h
  receivers:
  - name: hook
    webhook_configs:
    - url: %s
`, hookSrv.URL))
	am := alertmanagerClient(t, c.quer.base(), ws)
	waitDefinitionInForce(t, am)
	time.Sleep(2 * time.Second) // every replica loads it

	starts, ends := strfmt.DateTime(time.Now()), strfmt.DateTime(time.Now().Add(time.Hour))
	name, value, isRegex, isEqual, by, comment := "alertname", "Silenced", false, true, "test", "quiet"
	sil, err := am.Silence.PostSilences(silence.NewPostSilencesParams().WithSilence(&models.PostableSilence{Silence: models.Silence{
		Matchers: models.Matchers{{Name: &name, Value: &value, IsRegex: &isRegex, IsEqual: &isEqual}},
		StartsAt: &starts, EndsAt: &ends, CreatedBy: &by, Comment: &comment,
	}}))
	require.NoError(t, err)

	// A sender re-posting the firing alerts every second, as a ruler does.
	var mu sync.Mutex
	firing := []string{"Silenced"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			mu.Lock()
			var alerts models.PostableAlerts
			for _, n := range firing {
				alerts = append(alerts, postableAlert(map[string]string{"alertname": n}))
			}
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = am.Alert.PostAlerts(alert.NewPostAlertsParamsWithContext(ctx).WithAlerts(alerts))
			cancel()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})
	fire := func(names ...string) {
		mu.Lock()
		firing = append(firing, names...)
		mu.Unlock()
		for _, n := range names {
			require.Eventually(t, func() bool { return hook.count("firing", n) > 0 }, 30*time.Second, 100*time.Millisecond, "%s was notified", n)
		}
	}
	exactlyOnce := func(names []string) {
		t.Helper()
		for _, n := range names {
			require.Equal(t, 1, hook.count("firing", n), "%s notified once", n)
		}
		require.Zero(t, hook.count("firing", "Silenced"), "a silenced alert was notified")
	}

	before := []string{"A1", "A2", "A3", "A4"}
	fire(before...)
	time.Sleep(3 * time.Second)
	// The replica that notifies (position 0) is the one killed.
	victim := -1
	for i, p := range ams {
		if strings.Contains(metricsOf(t, p), `vigil_alertmanager_replica_position{workspace="`+ws+`"} 0`) {
			victim = i
		}
	}
	require.NotEqual(t, -1, victim, "one replica is the first")
	ams[victim].kill()
	after := []string{"B1", "B2", "B3", "B4"}
	fire(after...)
	time.Sleep(15 * time.Second) // every replica's wait (2 x 5 s) and a few polls
	all := append(append([]string{}, before...), after...)
	exactlyOnce(all)

	// Every alertmanager stops (each writes its state to object storage)
	// and starts again; the sender keeps sending the same alerts.
	ams[victim].start()
	waitReady(t, ams[victim].base())
	time.Sleep(2 * time.Second) // it reads the others' state
	for _, p := range ams {
		p.stop()
	}
	for _, p := range ams {
		p.start()
	}
	for _, p := range ams {
		waitReady(t, p.base())
	}
	waitAlertmanagers()
	waitDefinitionInForce(t, am)
	silences, err := am.Silence.GetSilences(silence.NewGetSilencesParams())
	require.NoError(t, err)
	require.Len(t, silences.Payload, 1, "the silence survived the restart")
	require.Equal(t, sil.Payload.SilenceID, *silences.Payload[0].ID)
	require.Equal(t, "active", *silences.Payload[0].Status.State)
	// The sender's alerts reached the restarted alertmanagers; each group
	// waits, then finds in the notification log that it was sent.
	require.Eventually(t, func() bool {
		got, err := am.Alert.GetAlerts(alert.NewGetAlertsParams())
		return err == nil && len(got.Payload) == len(all)+1
	}, 30*time.Second, 200*time.Millisecond, "the alerts reached the restarted alertmanagers")
	time.Sleep(15 * time.Second)
	exactlyOnce(all)
}
