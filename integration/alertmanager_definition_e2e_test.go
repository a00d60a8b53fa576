//go:build e2e

package integration

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAWSCLIAlertManagerDefinitionAndLogging drives the alert manager
// definition and logging configuration commands of `aws amp`.
func TestAWSCLIAlertManagerDefinitionAndLogging(t *testing.T) {
	v, dir := startSigV4(t)
	ep := v.BaseURL()
	out, stderr, err := awsCLI(t, ep, keyAdmin, "create-workspace", "--alias", "am-cli")
	require.NoError(t, err, stderr)
	ws := out["workspaceId"].(string)
	def := filepath.Join(dir, "definition.yaml")
	require.NoError(t, os.WriteFile(def, []byte(contractDefinition), 0o600))

	out, stderr, err = awsCLI(t, ep, keyAdmin, "create-alert-manager-definition", "--workspace-id", ws, "--data", "fileb://"+def)
	require.NoError(t, err, stderr)
	require.Equal(t, "CREATING", out["status"].(map[string]any)["statusCode"])
	out, stderr, err = awsCLI(t, ep, keyAdmin, "describe-alert-manager-definition", "--workspace-id", ws)
	require.NoError(t, err, stderr)
	d := out["alertManagerDefinition"].(map[string]any)
	require.Equal(t, "ACTIVE", d["status"].(map[string]any)["statusCode"])
	require.NotEmpty(t, d["data"])

	out, stderr, err = awsCLI(t, ep, keyAdmin, "put-alert-manager-definition", "--workspace-id", ws, "--data", "fileb://"+def)
	require.NoError(t, err, stderr)
	require.Equal(t, "UPDATING", out["status"].(map[string]any)["statusCode"])
	require.NoError(t, os.WriteFile(def, []byte("alertmanager_config: |\n  route: {receiver: r}\n  receivers:\n  - name: r\n    webhook_configs: [{url: 'http://169.254.169.254/'}]\n"), 0o600))
	_, stderr, err = awsCLI(t, ep, keyAdmin, "put-alert-manager-definition", "--workspace-id", ws, "--data", "fileb://"+def)
	require.Error(t, err)
	require.Contains(t, stderr, "ValidationException")
	require.Contains(t, stderr, "receivers firewall")

	_, stderr, err = awsCLI(t, ep, keyAdmin, "delete-alert-manager-definition", "--workspace-id", ws)
	require.NoError(t, err, stderr)
	_, stderr, err = awsCLI(t, ep, keyAdmin, "describe-alert-manager-definition", "--workspace-id", ws)
	require.Error(t, err)
	require.Contains(t, stderr, "ResourceNotFoundException")

	group := "arn:aws:logs:us-east-1:111122223333:log-group:/aws/vendedlogs/prometheus:*"
	out, stderr, err = awsCLI(t, ep, keyAdmin, "create-logging-configuration", "--workspace-id", ws, "--log-group-arn", group)
	require.NoError(t, err, stderr)
	require.Equal(t, "CREATING", out["status"].(map[string]any)["statusCode"])
	out, stderr, err = awsCLI(t, ep, keyAdmin, "describe-logging-configuration", "--workspace-id", ws)
	require.NoError(t, err, stderr)
	require.Equal(t, group, out["loggingConfiguration"].(map[string]any)["logGroupArn"])
	_, stderr, err = awsCLI(t, ep, keyAdmin, "update-logging-configuration", "--workspace-id", ws, "--log-group-arn", group)
	require.NoError(t, err, stderr)
	_, stderr, err = awsCLI(t, ep, keyAdmin, "delete-logging-configuration", "--workspace-id", ws)
	require.NoError(t, err, stderr)
}
