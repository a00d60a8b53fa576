//go:build e2e

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/controlplane"
)

// TestAWSCLIRuleGroupsNamespaces: the aws amp commands of rule groups
// namespaces create, describe, list, put and delete one, and get AMP's
// typed errors.
func TestAWSCLIRuleGroupsNamespaces(t *testing.T) {
	v, dir := startSigV4(t)
	ep := v.BaseURL()
	out, stderr, err := awsCLI(t, ep, keyAdmin, "create-workspace", "--alias", "rules-cli")
	require.NoError(t, err, stderr)
	ws := out["workspaceId"].(string)
	rules := filepath.Join(dir, "rules.yaml")
	require.NoError(t, os.WriteFile(rules, []byte(contractRules), 0o600))

	out, stderr, err = awsCLI(t, ep, keyAdmin, "create-rule-groups-namespace", "--workspace-id", ws, "--name", "node",
		"--data", "fileb://"+rules, "--tags", "team=sre")
	require.NoError(t, err, stderr)
	require.Equal(t, "CREATING", out["status"].(map[string]any)["statusCode"])
	require.Equal(t, map[string]any{"team": "sre"}, out["tags"])
	arn := out["arn"].(string)
	require.True(t, strings.HasSuffix(arn, ":rulegroupsnamespace/"+ws+"/node"), arn)

	out, stderr, err = awsCLI(t, ep, keyAdmin, "describe-rule-groups-namespace", "--workspace-id", ws, "--name", "node")
	require.NoError(t, err, stderr)
	ns := out["ruleGroupsNamespace"].(map[string]any)
	require.Equal(t, "ACTIVE", ns["status"].(map[string]any)["statusCode"])
	require.NotEmpty(t, ns["data"], "the rules file, base64")

	require.NoError(t, os.WriteFile(rules, []byte(recordingRules(2)), 0o600))
	out, stderr, err = awsCLI(t, ep, keyAdmin, "put-rule-groups-namespace", "--workspace-id", ws, "--name", "node", "--data", "fileb://"+rules)
	require.NoError(t, err, stderr)
	require.Equal(t, "UPDATING", out["status"].(map[string]any)["statusCode"])

	out, stderr, err = awsCLI(t, ep, keyAdmin, "list-rule-groups-namespaces", "--workspace-id", ws, "--name", "no")
	require.NoError(t, err, stderr)
	list := out["ruleGroupsNamespaces"].([]any)
	require.Len(t, list, 1)
	require.Equal(t, "node", list[0].(map[string]any)["name"])

	require.NoError(t, os.WriteFile(rules, []byte("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: sum(\n"), 0o600))
	_, stderr, err = awsCLI(t, ep, keyAdmin, "put-rule-groups-namespace", "--workspace-id", ws, "--name", "node", "--data", "fileb://"+rules)
	require.Error(t, err)
	require.Contains(t, stderr, "ValidationException")

	_, stderr, err = awsCLI(t, ep, keyAdmin, "delete-rule-groups-namespace", "--workspace-id", ws, "--name", "node")
	require.NoError(t, err, stderr)
	_, stderr, err = awsCLI(t, ep, keyAdmin, "describe-rule-groups-namespace", "--workspace-id", ws, "--name", "node")
	require.Error(t, err)
	require.Contains(t, stderr, "ResourceNotFoundException")
}

// TestPrometheus3PromtoolAgreesOnRulesFiles: every rules file of the table
// that Vigil accepts passes `promtool check rules` of Prometheus 3.16, and
// every one it refuses fails it.
func TestPrometheus3PromtoolAgreesOnRulesFiles(t *testing.T) {
	promtool := filepath.Join(filepath.Dir(prometheus3(t)), "promtool")
	dir := t.TempDir()
	for _, tc := range []struct{ name, data string }{
		{"recording and alerting", contractRules},
		{"empty", "groups: []\n"},
		{"labels and annotations templates", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations: {d: \"{{ $value | humanize }}\"}\n"},
		{"query offset and limit", "groups:\n  - name: g\n    query_offset: 1m\n    limit: 10\n    rules:\n      - record: r\n        expr: up\n"},
		{"group labels", "groups:\n  - name: g\n    labels: {team: a}\n    rules:\n      - record: r\n        expr: up\n"},
		{"native histogram functions", "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: histogram_quantile(0.9, rate(h[5m]))\n"},
		{"UTF-8 record name", "groups:\n  - name: g\n    rules:\n      - record: \"my.metric\"\n        expr: up\n"},
		{"not YAML", "groups: ["},
		{"unknown field", "groups:\n  - name: g\n    evaluation: 1m\n    rules:\n      - record: r\n        expr: up\n"},
		{"bad PromQL", "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: sum(\n"},
		{"record and alert", "groups:\n  - name: g\n    rules:\n      - record: r\n        alert: A\n        expr: up\n"},
		{"neither record nor alert", "groups:\n  - name: g\n    rules:\n      - expr: up\n"},
		{"no expr", "groups:\n  - name: g\n    rules:\n      - record: r\n"},
		{"duplicate group", "groups:\n  - name: g\n    rules: []\n  - name: g\n    rules: []\n"},
		{"empty group name", "groups:\n  - name: \"\"\n    rules: []\n"},
		{"for on a recording rule", "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n        for: 1m\n"},
		{"bad template", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        annotations: {d: \"{{ $value \"}\n"},
		{"invalid label name", "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n        labels: {\"__name__\": x}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			require.NoError(t, os.WriteFile(path, []byte(tc.data), 0o600))
			out, promtoolErr := exec.Command(promtool, "check", "rules", path).CombinedOutput()
			_, vigilErr := controlplane.ParseRules([]byte(tc.data))
			require.Equal(t, promtoolErr == nil, vigilErr == nil, "promtool: %s\nVigil: %v", out, vigilErr)
			t.Logf("accepted by both: %v", vigilErr == nil)
		})
	}
}
