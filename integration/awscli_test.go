//go:build e2e

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// awsCLI runs the preinstalled aws CLI against Vigil with key's credentials
// and no configuration of the machine's user.
func awsCLI(t *testing.T, endpoint string, key iamKey, args ...string) (map[string]any, string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command("aws", append(append([]string{"amp"}, args...), "--endpoint-url", endpoint, "--region", "us-east-1", "--output", "json")...)
	cmd.Env = []string{
		"HOME=" + home, "PATH=" + os.Getenv("PATH"),
		"AWS_ACCESS_KEY_ID=" + key.id, "AWS_SECRET_ACCESS_KEY=" + key.secret,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_MAX_ATTEMPTS=1",
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := map[string]any{}
	if s := strings.TrimSpace(stdout.String()); s != "" {
		require.NoError(t, json.Unmarshal([]byte(s), &out), s)
	}
	return out, stderr.String(), err
}

// TestAWSCLI: the preinstalled aws amp commands create, tag, list,
// configure and delete a workspace, and get AMP's typed errors.
func TestAWSCLI(t *testing.T) {
	_, err := exec.LookPath("aws")
	require.NoError(t, err, "the aws CLI is preinstalled on these machines")
	v, _ := startSigV4(t)
	ep := v.BaseURL()

	out, stderr, err := awsCLI(t, ep, keyAdmin, "create-workspace", "--alias", "from-cli", "--tags", "env=test")
	require.NoError(t, err, stderr)
	ws, arn := out["workspaceId"].(string), out["arn"].(string)
	require.Equal(t, "ACTIVE", out["status"].(map[string]any)["statusCode"])

	_, stderr, err = awsCLI(t, ep, keyAdmin, "tag-resource", "--resource-arn", arn, "--tags", "team=red,tier=gold")
	require.NoError(t, err, stderr)
	out, stderr, err = awsCLI(t, ep, keyAdmin, "list-tags-for-resource", "--resource-arn", arn)
	require.NoError(t, err, stderr)
	require.Equal(t, map[string]any{"env": "test", "team": "red", "tier": "gold"}, out["tags"])
	_, stderr, err = awsCLI(t, ep, keyAdmin, "untag-resource", "--resource-arn", arn, "--tag-keys", "tier")
	require.NoError(t, err, stderr)

	out, stderr, err = awsCLI(t, ep, keyAdmin, "list-workspaces", "--alias", "from-cli")
	require.NoError(t, err, stderr)
	list := out["workspaces"].([]any)
	require.Len(t, list, 1)
	require.Equal(t, ws, list[0].(map[string]any)["workspaceId"])

	_, stderr, err = awsCLI(t, ep, keyAdmin, "update-workspace-alias", "--workspace-id", ws, "--alias", "renamed")
	require.NoError(t, err, stderr)
	_, stderr, err = awsCLI(t, ep, keyAdmin, "update-workspace-configuration", "--workspace-id", ws, "--retention-period-in-days", "45",
		"--limits-per-label-set", `[{"labelSet":{"job":"api"},"limits":{"maxSeries":500}}]`)
	require.NoError(t, err, stderr)
	out, stderr, err = awsCLI(t, ep, keyAdmin, "describe-workspace-configuration", "--workspace-id", ws)
	require.NoError(t, err, stderr)
	cfg := out["workspaceConfiguration"].(map[string]any)
	require.EqualValues(t, 45, cfg["retentionPeriodInDays"])

	out, stderr, err = awsCLI(t, ep, keyAdmin, "describe-workspace", "--workspace-id", ws)
	require.NoError(t, err, stderr)
	require.Equal(t, "renamed", out["workspace"].(map[string]any)["alias"])

	// Typed errors, as the CLI prints them.
	_, stderr, err = awsCLI(t, ep, keyWriter, "list-workspaces")
	require.Error(t, err)
	require.Contains(t, stderr, "AccessDeniedException")
	_, stderr, err = awsCLI(t, ep, keyAdmin, "update-workspace-configuration", "--workspace-id", ws, "--retention-period-in-days", "5000")
	require.Error(t, err)
	require.Contains(t, stderr, "ValidationException")

	_, stderr, err = awsCLI(t, ep, keyAdmin, "delete-workspace", "--workspace-id", ws)
	require.NoError(t, err, stderr)
	_, stderr, err = awsCLI(t, ep, keyAdmin, "describe-workspace", "--workspace-id", ws)
	require.Error(t, err)
	require.Contains(t, stderr, "ResourceNotFoundException")
}

// prometheus3 is the path of Prometheus 3.16 as `make install-prometheus3`
// installs it.
func prometheus3(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VIGIL_PROMETHEUS3"); p != "" {
		return p
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	require.NoError(t, err)
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "prometheus-v0.316.0", "prometheus")
	_, err = os.Stat(p)
	require.NoError(t, err, "Prometheus 3.16 is not installed: run 'make e2e', which installs it")
	return p
}

// TestPrometheus3SigV4: Prometheus 3.16 in agent mode remote-writes with a
// sigv4 block, signed by a user allowed only aps:RemoteWrite; that user's
// query is refused with 403, the admin's answers.
func TestPrometheus3SigV4(t *testing.T) {
	promBin := prometheus3(t)
	v, _ := startSigV4(t)
	out, stderr, err := awsCLI(t, v.BaseURL(), keyAdmin, "create-workspace", "--alias", "prom3")
	require.NoError(t, err, stderr)
	ws := out["workspaceId"].(string)

	startPrometheusAgent(t, promBin, "--agent", func(port int) string {
		return fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:%d']
remote_write:
  - url: %s/api/v1/remote_write
    sigv4:
      region: us-east-1
      access_key: %s
      secret_key: %s
    queue_config:
      batch_send_deadline: 1s
`, port, workspaceURL(v.BaseURL(), ws), keyWriter.id, keyWriter.secret)
	})

	admin := signedQuerier(t, workspaceURL(v.BaseURL(), ws), keyAdmin.id, keyAdmin.secret)
	require.Eventually(t, func() bool {
		val, _, _, err := admin.Query(context.Background(), `prometheus_build_info`, time.Now())
		if err != nil {
			return false
		}
		vec := val.(model.Vector)
		// A go-installed build carries no version label; the binary is the
		// one started above.
		return len(vec) == 1
	}, 60*time.Second, 500*time.Millisecond, "Prometheus 3.16's series were not queryable within 60 s")

	_, _, _, err = signedQuerier(t, workspaceURL(v.BaseURL(), ws), keyWriter.id, keyWriter.secret).Query(context.Background(), "up", time.Now())
	require.ErrorContains(t, err, "403")
	code, body := signedDo(t, keyWriter, "GET", workspaceURL(v.BaseURL(), ws)+"/api/v1/query?query=up", nil, nil)
	require.Equal(t, 403, code)
	require.Contains(t, body, "not authorized to perform: aps:QueryMetrics")
}

// TestAWSCLIQueryLogging: the preinstalled aws amp commands create,
// describe, update and delete a workspace's query logging configuration,
// and get AMP's typed errors.
func TestAWSCLIQueryLogging(t *testing.T) {
	_, err := exec.LookPath("aws")
	require.NoError(t, err, "the aws CLI is preinstalled on these machines")
	v, _ := startSigV4(t)
	ep := v.BaseURL()
	out, stderr, err := awsCLI(t, ep, keyAdmin, "create-workspace", "--alias", "qlog-cli")
	require.NoError(t, err, stderr)
	ws := out["workspaceId"].(string)
	dests := func(arn string, qsp int) string {
		return fmt.Sprintf(`[{"cloudWatchLogs":{"logGroupArn":%q},"filters":{"qspThreshold":%d}}]`, arn, qsp)
	}
	const group = "arn:aws:logs:us-east-1:111122223333:log-group:queries:*"

	out, stderr, err = awsCLI(t, ep, keyAdmin, "create-query-logging-configuration", "--workspace-id", ws, "--destinations", dests(group, 500))
	require.NoError(t, err, stderr)
	require.Equal(t, "ACTIVE", out["status"].(map[string]any)["statusCode"])
	_, stderr, err = awsCLI(t, ep, keyAdmin, "create-query-logging-configuration", "--workspace-id", ws, "--destinations", dests(group, 500))
	require.Error(t, err)
	require.Contains(t, stderr, "ConflictException")

	_, stderr, err = awsCLI(t, ep, keyAdmin, "update-query-logging-configuration", "--workspace-id", ws, "--destinations", dests(group, 42))
	require.NoError(t, err, stderr)
	out, stderr, err = awsCLI(t, ep, keyAdmin, "describe-query-logging-configuration", "--workspace-id", ws)
	require.NoError(t, err, stderr)
	cfg := out["queryLoggingConfiguration"].(map[string]any)
	require.Equal(t, ws, cfg["workspace"])
	d := cfg["destinations"].([]any)[0].(map[string]any)
	require.EqualValues(t, 42, d["filters"].(map[string]any)["qspThreshold"])
	require.Equal(t, group, d["cloudWatchLogs"].(map[string]any)["logGroupArn"])

	_, stderr, err = awsCLI(t, ep, keyAdmin, "update-query-logging-configuration", "--workspace-id", ws, "--destinations", dests("arn:aws:logs:us-east-1:111122223333:log-group:queries", 1))
	require.Error(t, err)
	require.Contains(t, stderr, "ValidationException")

	_, stderr, err = awsCLI(t, ep, keyAdmin, "delete-query-logging-configuration", "--workspace-id", ws)
	require.NoError(t, err, stderr)
	_, stderr, err = awsCLI(t, ep, keyAdmin, "describe-query-logging-configuration", "--workspace-id", ws)
	require.Error(t, err)
	require.Contains(t, stderr, "ResourceNotFoundException")
}
