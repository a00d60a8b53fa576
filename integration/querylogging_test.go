package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/querylog"
)

const contractLogGroup = "arn:aws:logs:us-east-1:111122223333:log-group:/aws/vendedlogs/prometheus/queries:*"

func queryLoggingDestinations(arn string, qsp int64) []types.LoggingDestination {
	return []types.LoggingDestination{{
		CloudWatchLogs: &types.CloudWatchLogDestination{LogGroupArn: aws.String(arn)},
		Filters:        &types.LoggingFilter{QspThreshold: aws.Int64(qsp)},
	}}
}

// TestQueryLoggingContract drives the four query logging operations
// through the AWS SDK for Go v2 AMP client, with their typed errors and
// clientToken retries.
func TestQueryLoggingContract(t *testing.T) {
	v, _ := startSigV4(t)
	ctx := context.Background()
	c := keyAdmin.amp(v.BaseURL())
	created, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("qlog")})
	require.NoError(t, err)
	ws := created.WorkspaceId

	// None yet.
	_, err = c.DescribeQueryLoggingConfiguration(ctx, &amp.DescribeQueryLoggingConfigurationInput{WorkspaceId: ws})
	var nf *types.ResourceNotFoundException
	require.ErrorAs(t, err, &nf)
	require.Equal(t, "QueryLoggingConfiguration", *nf.ResourceType)
	_, err = c.UpdateQueryLoggingConfiguration(ctx, &amp.UpdateQueryLoggingConfigurationInput{WorkspaceId: ws, Destinations: queryLoggingDestinations(contractLogGroup, 1)})
	require.ErrorAs(t, err, &nf)
	_, err = c.DeleteQueryLoggingConfiguration(ctx, &amp.DeleteQueryLoggingConfigurationInput{WorkspaceId: ws})
	require.ErrorAs(t, err, &nf)
	_, err = c.CreateQueryLoggingConfiguration(ctx, &amp.CreateQueryLoggingConfigurationInput{WorkspaceId: aws.String("ws-00000000-0000-4000-8000-000000000000"), Destinations: queryLoggingDestinations(contractLogGroup, 1)})
	require.ErrorAs(t, err, &nf, "an unknown workspace")

	// Create, with a retry of the same call.
	in := &amp.CreateQueryLoggingConfigurationInput{WorkspaceId: ws, Destinations: queryLoggingDestinations(contractLogGroup, 1000), ClientToken: aws.String("ql-token-1")}
	out, err := c.CreateQueryLoggingConfiguration(ctx, in)
	require.NoError(t, err)
	require.Equal(t, types.QueryLoggingConfigurationStatusCodeActive, out.Status.StatusCode)
	out, err = c.CreateQueryLoggingConfiguration(ctx, in)
	require.NoError(t, err, "a retry with the same clientToken and parameters")
	require.Equal(t, types.QueryLoggingConfigurationStatusCodeActive, out.Status.StatusCode)

	// One per workspace.
	_, err = c.CreateQueryLoggingConfiguration(ctx, &amp.CreateQueryLoggingConfigurationInput{WorkspaceId: ws, Destinations: queryLoggingDestinations(contractLogGroup, 5)})
	var conflict *types.ConflictException
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, *ws, *conflict.ResourceId)

	desc, err := c.DescribeQueryLoggingConfiguration(ctx, &amp.DescribeQueryLoggingConfigurationInput{WorkspaceId: ws})
	require.NoError(t, err)
	qlc := desc.QueryLoggingConfiguration
	require.Equal(t, *ws, *qlc.Workspace)
	require.Equal(t, types.QueryLoggingConfigurationStatusCodeActive, qlc.Status.StatusCode)
	require.Len(t, qlc.Destinations, 1)
	require.Equal(t, contractLogGroup, *qlc.Destinations[0].CloudWatchLogs.LogGroupArn)
	require.Equal(t, int64(1000), *qlc.Destinations[0].Filters.QspThreshold)
	require.False(t, qlc.CreatedAt.IsZero())
	require.False(t, qlc.ModifiedAt.Before(*qlc.CreatedAt))

	// Update.
	other := "arn:aws:logs:us-east-1:111122223333:log-group:other:*"
	up, err := c.UpdateQueryLoggingConfiguration(ctx, &amp.UpdateQueryLoggingConfigurationInput{WorkspaceId: ws, Destinations: queryLoggingDestinations(other, 0)})
	require.NoError(t, err)
	require.Equal(t, types.QueryLoggingConfigurationStatusCodeActive, up.Status.StatusCode)
	desc, err = c.DescribeQueryLoggingConfiguration(ctx, &amp.DescribeQueryLoggingConfigurationInput{WorkspaceId: ws})
	require.NoError(t, err)
	require.Equal(t, other, *desc.QueryLoggingConfiguration.Destinations[0].CloudWatchLogs.LogGroupArn)
	require.Equal(t, int64(0), *desc.QueryLoggingConfiguration.Destinations[0].Filters.QspThreshold)

	// The model's constraints, as ValidationExceptions naming the field.
	for _, tc := range []struct {
		name  string
		dests []types.LoggingDestination
		field string
	}{
		{"not a log group ARN", queryLoggingDestinations("arn:aws:s3:::bucket", 1), "destinations.1.member.cloudWatchLogs.logGroupArn"},
		{"negative threshold", queryLoggingDestinations(contractLogGroup, -1), "destinations.1.member.filters.qspThreshold"},
		{"two destinations", append(queryLoggingDestinations(contractLogGroup, 1), queryLoggingDestinations(other, 1)...), "destinations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.UpdateQueryLoggingConfiguration(ctx, &amp.UpdateQueryLoggingConfigurationInput{WorkspaceId: ws, Destinations: tc.dests})
			var ve *types.ValidationException
			require.ErrorAs(t, err, &ve)
			require.Equal(t, types.ValidationExceptionReasonFieldValidationFailed, ve.Reason)
			require.Equal(t, tc.field, *ve.FieldList[0].Name)
			require.Contains(t, *ve.Message, "1 validation error detected: ")
		})
	}

	// IAM: the query-only managed policy may not change it.
	_, err = keyReader.amp(v.BaseURL()).DeleteQueryLoggingConfiguration(ctx, &amp.DeleteQueryLoggingConfigurationInput{WorkspaceId: ws})
	var denied *types.AccessDeniedException
	require.ErrorAs(t, err, &denied)
	require.Contains(t, *denied.Message, "aps:DeleteQueryLoggingConfiguration")

	// Delete, with a retry.
	del := &amp.DeleteQueryLoggingConfigurationInput{WorkspaceId: ws, ClientToken: aws.String("ql-token-del")}
	_, err = c.DeleteQueryLoggingConfiguration(ctx, del)
	require.NoError(t, err)
	_, err = c.DeleteQueryLoggingConfiguration(ctx, del)
	require.NoError(t, err, "a retried delete")
	_, err = c.DescribeQueryLoggingConfiguration(ctx, &amp.DescribeQueryLoggingConfigurationInput{WorkspaceId: ws})
	require.ErrorAs(t, err, &nf)

	// Deleting the workspace deletes its configuration.
	_, err = c.CreateQueryLoggingConfiguration(ctx, &amp.CreateQueryLoggingConfigurationInput{WorkspaceId: ws, Destinations: queryLoggingDestinations(contractLogGroup, 1)})
	require.NoError(t, err)
	_, err = c.DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: ws})
	require.NoError(t, err)
	_, err = c.DescribeQueryLoggingConfiguration(ctx, &amp.DescribeQueryLoggingConfigurationInput{WorkspaceId: ws})
	require.ErrorAs(t, err, &nf)
}

// TestQueryLoggingSink: the process's query logger reads the workspace's
// query logging configuration from the control plane and writes the
// queries over its qspThreshold to <data-dir>/query-logs/<workspace>.log.
func TestQueryLoggingSink(t *testing.T) {
	dataDir := t.TempDir()
	v := startMonolith(t, dataDir)
	require.NotNil(t, v.QueryLogger)
	ctx := context.Background()
	c := ampClient(v.BaseURL())
	var ws []string
	for range 2 {
		created, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
		require.NoError(t, err)
		ws = append(ws, *created.WorkspaceId)
	}
	_, err := c.CreateQueryLoggingConfiguration(ctx, &amp.CreateQueryLoggingConfigurationInput{WorkspaceId: &ws[0], Destinations: queryLoggingDestinations(contractLogGroup, 100)})
	require.NoError(t, err)

	now := time.Now()
	v.QueryLogger.Log(ctx, ws[0], querylog.Entry{Query: "over", Start: now, End: now, SamplesProcessed: 101})
	v.QueryLogger.Log(ctx, ws[0], querylog.Entry{Query: "under", Start: now, End: now, SamplesProcessed: 100})
	v.QueryLogger.Log(ctx, ws[1], querylog.Entry{Query: "unconfigured", Start: now, End: now, SamplesProcessed: 1 << 30})

	body, err := os.ReadFile(filepath.Join(dataDir, "query-logs", ws[0]+".log"))
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(body), "\n"))
	require.Contains(t, string(body), `"query":"over"`)
	require.Contains(t, string(body), `"logGroupArn":"`+contractLogGroup+`"`)
	_, err = os.Stat(filepath.Join(dataDir, "query-logs", ws[1]+".log"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
