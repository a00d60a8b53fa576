//go:build e2e

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// TestPrometheusAgentRemoteWrite runs a real Prometheus server in agent mode
// that scrapes itself and remote-writes to Vigil; its series must become
// queryable from Vigil within 60 seconds.
func TestPrometheusAgentRemoteWrite(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	require.NoError(t, err, "prometheus is not installed: run 'make e2e', which installs it")

	v := startMonolith(t, t.TempDir())
	ws := createWorkspace(t, v.BaseURL(), "prometheus-agent")

	promPort, _ := startPrometheusAgent(t, promBin, "--enable-feature=agent", func(port int) string {
		return fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:%d']
remote_write:
  - url: %s/api/v1/remote_write
    queue_config:
      batch_send_deadline: 1s
`, port, workspaceURL(v.BaseURL(), ws))
	})

	api := promClient(t, workspaceURL(v.BaseURL(), ws))
	deadline := time.Now().Add(60 * time.Second) // for both series together
	for _, q := range []string{`up{job="prometheus"}`, `prometheus_build_info`} {
		require.Eventually(t, func() bool {
			val, _, _, err := api.Query(context.Background(), q, time.Now())
			if err != nil {
				return false
			}
			vec := val.(model.Vector)
			return len(vec) > 0 && vec[0].Value == 1
		}, time.Until(deadline), 500*time.Millisecond, "%s was not queryable from Vigil within 60 s", q)
	}

	// The sender really is an agent: it keeps no local TSDB to query.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/query?query=up", promPort))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "unavailable with Prometheus Agent")
}

// startPrometheusAgent runs a Prometheus binary in agent mode (agentFlag:
// --enable-feature=agent for 2.x, --agent for 3.x) with the configuration
// config returns for its own listen port, which it returns once the agent
// is ready (on another port, should the first be taken meanwhile). The
// process is killed at the end of the test, or by the kill function it
// returns, and its log shown if the test failed.
func startPrometheusAgent(t *testing.T, bin, agentFlag string, config func(port int) string) (int, func()) {
	t.Helper()
	return startPrometheusProcess(t, bin, func(dir string) []string {
		return []string{agentFlag, "--storage.agent.path=" + filepath.Join(dir, "agent")}
	}, config)
}

// startPrometheusProcess starts a Prometheus with flags (given its
// directory) and the configuration config returns for its port, and
// returns that port and a function that kills it.
func startPrometheusProcess(t *testing.T, bin string, flags func(dir string) []string, config func(port int) string) (int, func()) {
	t.Helper()
	var (
		port int
		kill func()
	)
	retryOnPortClash(t, "prometheus", func() (<-chan struct{}, func() bool) {
		port = freePort(t)
		dir := t.TempDir()
		cfgPath := filepath.Join(dir, "prometheus.yml")
		require.NoError(t, os.WriteFile(cfgPath, []byte(config(port)), 0o600))
		logPath := filepath.Join(dir, "prometheus.log")
		logFile, err := os.Create(logPath)
		require.NoError(t, err)
		cmd := exec.Command(bin, append(flags(dir), "--config.file="+cfgPath, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		require.NoError(t, cmd.Start())
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			_ = logFile.Close()
			close(exited)
		}()
		kill = func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
			if t.Failed() {
				b, _ := os.ReadFile(logPath)
				t.Logf("prometheus log:\n%s", b)
			}
		})
		// Ready, and ours: the server on the port runs with this
		// configuration file (another run's agent that took the port does
		// not).
		ready := func() bool {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/status/flags", port))
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var flags struct {
				Data map[string]string `json:"data"`
			}
			return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&flags) == nil && flags.Data["config.file"] == cfgPath
		}
		return exited, ready
	})
	return port, kill
}
