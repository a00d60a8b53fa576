//go:build e2e

package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// startAlertmanager starts Debian's prometheus-alertmanager on loopback,
// routing every alert to hook, and returns its URL.
func startAlertmanager(t *testing.T, hook string) string {
	return startAlertmanagerWith(t, webhookConfig(hook))
}

// startAlertmanagerWith starts Debian's prometheus-alertmanager on
// loopback with the configuration cfg, and returns its URL.
func startAlertmanagerWith(t *testing.T, cfg string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	require.NoError(t, err, "Debian's prometheus-alertmanager: make e2e installs it")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "am.yml"), []byte(cfg), 0o600))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "am.yml"), "--storage.path="+dir,
		"--web.listen-address="+addr, "--cluster.listen-address=")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("alertmanager:\n%s", logs.String())
		}
	})
	url := "http://" + addr
	waitOK(t, url+"/-/ready")
	return url
}

// TestRulerAlertsReachAlertmanager: an alerting rule with for: goes pending,
// then firing (the ALERTS series says so), its notification reaches a
// webhook through Debian's Alertmanager, and once its expression no longer
// holds, the resolved notification follows.
func TestRulerAlertsReachAlertmanager(t *testing.T) {
	hook := &webhook{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	am := startAlertmanager(t, hookSrv.URL)

	v := startMonolith(t, t.TempDir(), "-ruler.poll-interval=200ms", "-ruler.min-evaluation-interval=1s",
		"-ruler.resend-delay=1s", "-ruler.alertmanager-url="+am)
	base := v.BaseURL()
	ws := createWorkspace(t, base, "alerts")
	ctx := context.Background()
	rw := remoteWriter(t, workspaceURL(base, ws)+"/api/v1/remote_write")
	write := func(value float64) {
		_, err := rw.Store(ctx, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			series("test_value", map[string]string{"job": "x"}, prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: value}),
		}}), 0)
		require.NoError(t, err)
	}
	write(1)

	createNamespace(t, base, ws, "alerts", `groups:
  - name: alerting
    interval: 1s
    rules:
      - alert: ValueHigh
        expr: test_value > 0
        for: 3s
        labels: {severity: page}
`)

	api := promClient(t, workspaceURL(base, ws))
	state := func() string {
		val, _, _, err := api.Query(ctx, `ALERTS{alertname="ValueHigh"}`, time.Now())
		if vec, ok := val.(model.Vector); err == nil && ok && len(vec) > 0 {
			return string(vec[len(vec)-1].Metric["alertstate"])
		}
		return ""
	}
	require.Eventually(t, func() bool { return state() == "pending" }, 20*time.Second, 100*time.Millisecond, "pending first")
	require.False(t, hook.got("firing", "ValueHigh"), "nothing is sent while pending")
	require.Eventually(t, func() bool { return state() == "firing" }, 20*time.Second, 100*time.Millisecond, "firing after for:")
	require.Eventually(t, func() bool { return hook.got("firing", "ValueHigh") }, 30*time.Second, 100*time.Millisecond, "the webhook gets the firing alert")

	write(0)
	require.Eventually(t, func() bool { return hook.got("resolved", "ValueHigh") }, 60*time.Second, 200*time.Millisecond, "then its resolution")
}
