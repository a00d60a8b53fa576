package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/stretchr/testify/require"
)

// contractDefinition is the definition of AMP's guide (L3235), with keys of
// its own for SNS (Vigil signs with no identity of its own unless the
// operator allows it).
const contractDefinition = `template_files:
  default_template: |
    {{ define "sns.default.message" }}{{ .CommonLabels.alertname }}{{ end }}
alertmanager_config: |
  route:
    receiver: 'default'
  receivers:
  - name: 'default'
    sns_configs:
    - topic_arn: arn:aws:sns:us-east-2:123456789012:My-Topic
      sigv4:
        region: us-east-2
        access_key: AKIAEXAMPLE
        secret_key: secret
      attributes:
        key: key1
        value: value1
`

// TestAlertManagerDefinitionContract drives the four alert manager
// definition operations through the AWS SDK for Go v2 AMP client, with
// each typed error, idempotency, and the checks a definition passes
// before it is stored.
func TestAlertManagerDefinitionContract(t *testing.T) {
	v, _ := startSigV4(t)
	ctx := context.Background()
	c := keyAdmin.amp(v.BaseURL())
	created, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("am")})
	require.NoError(t, err)
	ws := created.WorkspaceId

	// None yet.
	var nf *types.ResourceNotFoundException
	_, err = c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
	require.ErrorAs(t, err, &nf)
	require.Equal(t, "AlertManagerDefinition", *nf.ResourceType)
	_, err = c.PutAlertManagerDefinition(ctx, &amp.PutAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(contractDefinition)})
	require.ErrorAs(t, err, &nf)
	_, err = c.DeleteAlertManagerDefinition(ctx, &amp.DeleteAlertManagerDefinitionInput{WorkspaceId: ws})
	require.ErrorAs(t, err, &nf)
	_, err = c.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String("ws-00000000-0000-4000-8000-000000000000"), Data: []byte(contractDefinition)})
	require.ErrorAs(t, err, &nf, "an unknown workspace")

	// Create, with a retry of the same call.
	in := &amp.CreateAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(contractDefinition), ClientToken: aws.String("am-token-1")}
	out, err := c.CreateAlertManagerDefinition(ctx, in)
	require.NoError(t, err)
	require.Equal(t, types.AlertManagerDefinitionStatusCodeCreating, out.Status.StatusCode)
	_, err = c.CreateAlertManagerDefinition(ctx, in)
	require.NoError(t, err, "a retry with the same clientToken and data")
	var conflict *types.ConflictException
	_, err = c.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(contractDefinition)})
	require.ErrorAs(t, err, &conflict, "a second definition")

	desc, err := c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
	require.NoError(t, err)
	d := desc.AlertManagerDefinition
	require.Equal(t, types.AlertManagerDefinitionStatusCodeActive, d.Status.StatusCode)
	require.Equal(t, contractDefinition, string(d.Data))
	require.False(t, d.CreatedAt.IsZero())
	require.False(t, d.ModifiedAt.Before(*d.CreatedAt))

	// Put replaces it.
	next := strings.Replace(contractDefinition, "key1", "key2", 1)
	put, err := c.PutAlertManagerDefinition(ctx, &amp.PutAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(next)})
	require.NoError(t, err)
	require.Equal(t, types.AlertManagerDefinitionStatusCodeUpdating, put.Status.StatusCode)
	desc, err = c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
	require.NoError(t, err)
	require.Equal(t, next, string(desc.AlertManagerDefinition.Data))

	// Refused definitions change nothing: the one stored stays in force.
	for _, tc := range []struct{ name, data, reason string }{
		{"not YAML", "alertmanager_config: [", "not a YAML document"},
		{"not an Alertmanager configuration", "alertmanager_config: |\n  route: {}\n", "not valid"},
		{"SNS without sigv4.region", strings.Replace(contractDefinition, "        region: us-east-2\n", "", 1), "sigv4.region"},
		{"a local file", "alertmanager_config: |\n  route: {receiver: r}\n  receivers:\n  - name: r\n    webhook_configs:\n    - url: https://example.com/\n      http_config: {bearer_token_file: /etc/passwd}\n", "bearer_token_file"},
		{"a loopback URL", "alertmanager_config: |\n  route: {receiver: r}\n  receivers:\n  - name: r\n    webhook_configs:\n    - url: http://127.0.0.1:8080/\n", "receivers firewall"},
		{"a link-local URL", "alertmanager_config: |\n  route: {receiver: r}\n  receivers:\n  - name: r\n    webhook_configs:\n    - url: http://169.254.169.254/latest/meta-data/\n", "receivers firewall"},
		{"file://", "alertmanager_config: |\n  route: {receiver: r}\n  receivers:\n  - name: r\n    webhook_configs:\n    - url: file:///etc/passwd\n", "file"},
		{"over 1 MB", contractDefinition + "# " + strings.Repeat("x", 1<<20) + "\n", "more than the 1048576 allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.PutAlertManagerDefinition(ctx, &amp.PutAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(tc.data)})
			var ve *types.ValidationException
			require.ErrorAs(t, err, &ve)
			require.Equal(t, "data", *ve.FieldList[0].Name)
			require.Contains(t, *ve.Message, tc.reason)
			desc, err := c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
			require.NoError(t, err)
			require.Equal(t, next, string(desc.AlertManagerDefinition.Data))
		})
	}
	// IAM: the query-only managed policy may not read or change it.
	_, err = keyReader.amp(v.BaseURL()).DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
	var denied *types.AccessDeniedException
	require.ErrorAs(t, err, &denied)

	// Delete, with a retry of the same call.
	_, err = c.DeleteAlertManagerDefinition(ctx, &amp.DeleteAlertManagerDefinitionInput{WorkspaceId: ws, ClientToken: aws.String("am-del-1")})
	require.NoError(t, err)
	_, err = c.DeleteAlertManagerDefinition(ctx, &amp.DeleteAlertManagerDefinitionInput{WorkspaceId: ws, ClientToken: aws.String("am-del-1")})
	require.NoError(t, err, "a retry of the delete")
	_, err = c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
	require.ErrorAs(t, err, &nf)

	// Deleting the workspace deletes its definition.
	_, err = c.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: ws, Data: []byte(contractDefinition)})
	require.NoError(t, err)
	_, err = c.DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: ws})
	require.NoError(t, err)
	_, err = c.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: ws})
	require.ErrorAs(t, err, &nf)
}
