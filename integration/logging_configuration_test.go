package integration

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

// TestLoggingConfigurationContract drives the four logging configuration
// operations (AMP's vended logs of the ruler and the alertmanager) through
// the AWS SDK for Go v2 AMP client, with each error and idempotency.
func TestLoggingConfigurationContract(t *testing.T) {
	v, _ := startSigV4(t)
	ctx := context.Background()
	c := keyAdmin.amp(v.BaseURL())
	created, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("logs")})
	require.NoError(t, err)
	ws := created.WorkspaceId
	acct := accountOf(t, *created.Arn)
	group := "arn:aws:logs:us-east-1:" + acct + ":log-group:/aws/vendedlogs/prometheus:*"

	var nf *types.ResourceNotFoundException
	_, err = c.DescribeLoggingConfiguration(ctx, &amp.DescribeLoggingConfigurationInput{WorkspaceId: ws})
	require.ErrorAs(t, err, &nf)
	require.Equal(t, "LoggingConfiguration", *nf.ResourceType)
	_, err = c.UpdateLoggingConfiguration(ctx, &amp.UpdateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(group)})
	require.ErrorAs(t, err, &nf)
	_, err = c.DeleteLoggingConfiguration(ctx, &amp.DeleteLoggingConfigurationInput{WorkspaceId: ws})
	require.ErrorAs(t, err, &nf)
	_, err = c.CreateLoggingConfiguration(ctx, &amp.CreateLoggingConfigurationInput{WorkspaceId: aws.String("ws-00000000-0000-4000-8000-000000000000"), LogGroupArn: aws.String(group)})
	require.ErrorAs(t, err, &nf, "an unknown workspace")

	in := &amp.CreateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(group), ClientToken: aws.String("log-1")}
	out, err := c.CreateLoggingConfiguration(ctx, in)
	require.NoError(t, err)
	require.Equal(t, types.LoggingConfigurationStatusCodeCreating, out.Status.StatusCode)
	_, err = c.CreateLoggingConfiguration(ctx, in)
	require.NoError(t, err, "a retry with the same clientToken")
	_, err = c.CreateLoggingConfiguration(ctx, &amp.CreateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(group)})
	var apiErr smithy.APIError
	require.ErrorAs(t, err, &apiErr, "a second configuration")
	require.Equal(t, "ConflictException", apiErr.ErrorCode())

	desc, err := c.DescribeLoggingConfiguration(ctx, &amp.DescribeLoggingConfigurationInput{WorkspaceId: ws})
	require.NoError(t, err)
	lc := desc.LoggingConfiguration
	require.Equal(t, types.LoggingConfigurationStatusCodeActive, lc.Status.StatusCode)
	require.Equal(t, group, *lc.LogGroupArn)
	require.Equal(t, *ws, *lc.Workspace)
	require.False(t, lc.CreatedAt.IsZero())

	other := "arn:aws:logs:us-east-1:" + acct + ":log-group:team-a:*"
	up, err := c.UpdateLoggingConfiguration(ctx, &amp.UpdateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(other)})
	require.NoError(t, err)
	require.Equal(t, types.LoggingConfigurationStatusCodeUpdating, up.Status.StatusCode)
	desc, err = c.DescribeLoggingConfiguration(ctx, &amp.DescribeLoggingConfigurationInput{WorkspaceId: ws})
	require.NoError(t, err)
	require.Equal(t, other, *desc.LoggingConfiguration.LogGroupArn)

	for _, bad := range []string{"arn:aws:logs:us-east-1:" + acct + ":log-group:no-star", "arn:aws:s3:::bucket", "arn:aws:logs:us-east-1:12:log-group:x:*"} {
		_, err = c.UpdateLoggingConfiguration(ctx, &amp.UpdateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(bad)})
		var ve *types.ValidationException
		require.ErrorAs(t, err, &ve, bad)
		require.Equal(t, "logGroupArn", *ve.FieldList[0].Name)
	}

	_, err = keyReader.amp(v.BaseURL()).UpdateLoggingConfiguration(ctx, &amp.UpdateLoggingConfigurationInput{WorkspaceId: ws, LogGroupArn: aws.String(group)})
	var denied *types.AccessDeniedException
	require.ErrorAs(t, err, &denied)

	_, err = c.DeleteLoggingConfiguration(ctx, &amp.DeleteLoggingConfigurationInput{WorkspaceId: ws, ClientToken: aws.String("log-del")})
	require.NoError(t, err)
	_, err = c.DeleteLoggingConfiguration(ctx, &amp.DeleteLoggingConfigurationInput{WorkspaceId: ws, ClientToken: aws.String("log-del")})
	require.NoError(t, err, "a retry of the delete")
	_, err = c.DescribeLoggingConfiguration(ctx, &amp.DescribeLoggingConfigurationInput{WorkspaceId: ws})
	require.ErrorAs(t, err, &nf)
}
