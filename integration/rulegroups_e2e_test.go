//go:build e2e

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/stretchr/testify/require"
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
// that Vigil accepts through CreateRuleGroupsNamespace (the AWS SDK, on a
// running Vigil) passes `promtool check rules` of Prometheus 3.16, and
// every one it refuses fails it, but for the rows refused by AMP's limits
// or Vigil's bounds, which promtool does not know: those name the limit
// Vigil's refusal cites.
func TestPrometheus3PromtoolAgreesOnRulesFiles(t *testing.T) {
	promtool := filepath.Join(filepath.Dir(prometheus3(t)), "promtool")
	v := startMonolith(t, t.TempDir(), "-ruler.max-rule-groups-namespaces-per-workspace=0", "-ruler.max-rules-per-workspace=0")
	ctx := context.Background()
	c := ampClient(v.BaseURL())
	created, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	dir := t.TempDir()
	rule := func(r string) string { return "groups:\n  - name: g\n    rules:\n" + r }
	chain := strings.Repeat("up + ", 1100) + "up"
	for i, tc := range []struct {
		name, data string
		// vigilOnly: a limit of AMP's or a bound of Vigil's refuses the
		// file, which promtool accepts; the refusal names it.
		vigilOnly string
	}{
		{name: "recording and alerting", data: contractRules},
		{name: "empty", data: "groups: []\n"},
		{name: "labels and annotations templates", data: rule("      - alert: A\n        expr: up == 0\n        annotations: {d: \"{{ $value | humanize }}\"}\n")},
		{name: "template querying", data: rule("      - alert: A\n        expr: up == 0\n        annotations: {d: '{{ with query \"sum(up)\" }}{{ . | first | value }}{{ end }}'}\n")},
		{name: "query offset and limit", data: "groups:\n  - name: g\n    query_offset: 1m\n    limit: 10\n    rules:\n      - record: r\n        expr: up\n"},
		{name: "group labels", data: "groups:\n  - name: g\n    labels: {team: a}\n    rules:\n      - record: r\n        expr: up\n"},
		{name: "keep_firing_for", data: rule("      - alert: A\n        expr: up == 0\n        for: 1m\n        keep_firing_for: 5m\n")},
		{name: "native histogram functions", data: rule("      - record: r\n        expr: histogram_quantile(0.9, rate(h[5m]))\n")},
		{name: "UTF-8 record name", data: rule("      - record: \"my.metric\"\n        expr: up\n")},
		{name: "UTF-8 selector", data: rule("      - record: r\n        expr: sum({\"my.metric\", job=\"a\"})\n")},
		{name: "alert name with spaces", data: rule("      - alert: Disk is full\n        expr: up == 0\n")},
		{name: "not YAML", data: "groups: ["},
		{name: "unknown group field", data: "groups:\n  - name: g\n    evaluation: 1m\n    rules:\n      - record: r\n        expr: up\n"},
		{name: "unknown rule field", data: rule("      - record: r\n        expr: up\n        severity: high\n")},
		{name: "bad PromQL", data: rule("      - record: r\n        expr: sum(\n")},
		{name: "record and alert", data: rule("      - record: r\n        alert: A\n        expr: up\n")},
		{name: "neither record nor alert", data: rule("      - expr: up\n")},
		{name: "no expr", data: rule("      - record: r\n")},
		{name: "invalid record name", data: rule("      - record: \"\"\n        expr: up\n")},
		{name: "duplicate group", data: "groups:\n  - name: g\n    rules: []\n  - name: g\n    rules: []\n"},
		{name: "empty group name", data: "groups:\n  - name: \"\"\n    rules: []\n"},
		{name: "for on a recording rule", data: rule("      - record: r\n        expr: up\n        for: 1m\n")},
		{name: "keep_firing_for on a recording rule", data: rule("      - record: r\n        expr: up\n        keep_firing_for: 1m\n")},
		{name: "bad template", data: rule("      - alert: A\n        expr: up\n        annotations: {d: \"{{ $value \"}\n")},
		{name: "invalid label name", data: rule("      - record: r\n        expr: up\n        labels: {\"__name__\": x}\n")},
		{name: "negative limit", data: "groups:\n  - name: g\n    limit: -1\n    rules:\n      - record: r\n        expr: up\n"},
		{name: "negative query offset", data: "groups:\n  - name: g\n    query_offset: -1m\n    rules:\n      - record: r\n        expr: up\n"},
		{name: "interval under AMP's 30 s", data: "groups:\n  - name: g\n    interval: 10s\n    rules:\n      - record: r\n        expr: up\n", vigilOnly: "30s"},
		{name: "expression past Vigil's bound", data: rule("      - record: r\n        expr: " + chain + "\n"), vigilOnly: "binary operators"},
		{name: "template query past Vigil's bound", data: rule("      - alert: A\n        expr: up == 0\n        annotations: {d: '{{ query \"" + chain + "\" }}'}\n"), vigilOnly: "binary operators"},
		{name: "file over AMP's 1 MB", data: "# " + strings.Repeat("x", 1<<20) + "\ngroups: []\n", vigilOnly: "1048576"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			require.NoError(t, os.WriteFile(path, []byte(tc.data), 0o600))
			out, promtoolErr := exec.Command(promtool, "check", "rules", path).CombinedOutput()
			_, vigilErr := c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: created.WorkspaceId, Name: aws.String(fmt.Sprint("ns-", i)), Data: []byte(tc.data)})
			if vigilErr != nil {
				var ve *types.ValidationException
				require.ErrorAs(t, vigilErr, &ve, "a refused file is a ValidationException")
			}
			if tc.vigilOnly != "" {
				require.NoError(t, promtoolErr, "promtool accepts it: %s", out)
				require.ErrorContains(t, vigilErr, tc.vigilOnly)
				return
			}
			require.Equal(t, promtoolErr == nil, vigilErr == nil, "promtool: %s\nVigil: %v", out, vigilErr)
			t.Logf("accepted by both: %v", vigilErr == nil)
		})
	}
}
