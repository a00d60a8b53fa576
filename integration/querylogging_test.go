package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
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

// TestQueryLoggingSink: queries through the public API above a workspace's
// qspThreshold are logged once each, in that workspace's file; one below
// it is not; another workspace's log never holds them.
func TestQueryLoggingSink(t *testing.T) {
	dataDir := t.TempDir()
	v := startMonolith(t, dataDir)
	ctx := context.Background()
	c := ampClient(v.BaseURL())
	now := time.Now().Truncate(time.Second)
	var ws []string
	for i := range 2 {
		created, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
		require.NoError(t, err)
		ws = append(ws, *created.WorkspaceId)
		_, err = c.CreateQueryLoggingConfiguration(ctx, &amp.CreateQueryLoggingConfigurationInput{WorkspaceId: &ws[i], Destinations: queryLoggingDestinations(contractLogGroup, 100)})
		require.NoError(t, err)
		req := &prompb.WriteRequest{}
		for pod := range 10 {
			var samples []prompb.Sample
			for j := 20; j >= 0; j-- {
				samples = append(samples, prompb.Sample{Timestamp: now.Add(-time.Duration(j) * 15 * time.Second).UnixMilli(), Value: float64(100 - j)})
			}
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "requests_total"}, {Name: "pod", Value: fmt.Sprint(pod)}}, Samples: samples})
		}
		_, err = remoteWriter(t, workspaceURL(v.BaseURL(), ws[i])+"/api/v1/remote_write").Store(ctx, encode(t, req), 0)
		require.NoError(t, err)
	}
	query := func(ws, q string) {
		_, _, _, err := promClient(t, workspaceURL(v.BaseURL(), ws)).Query(ctx, q, now)
		require.NoError(t, err)
	}
	// 10 series x 20 samples of 5 minutes: 200 samples processed, over 100.
	query(ws[0], `sum(rate(requests_total[5m]))`)
	query(ws[0], `requests_total{pod="1"}`) // 1 sample
	query(ws[1], `max(rate(requests_total[5m]))`)

	logOf := func(ws string) string {
		var body []byte
		require.Eventually(t, func() bool {
			var err error
			body, err = os.ReadFile(filepath.Join(dataDir, "query-logs", ws+".log"))
			return err == nil
		}, 5*time.Second, 20*time.Millisecond)
		return string(body)
	}
	first, second := logOf(ws[0]), logOf(ws[1])
	require.Equal(t, 1, strings.Count(first, "\n"), first)
	require.Contains(t, first, `"query":"sum(rate(requests_total[5m]))"`)
	require.Contains(t, first, `"samplesProcessed":200`)
	require.Contains(t, first, `"series":10`)
	require.Contains(t, first, `"workspaceId":"`+ws[0]+`"`)
	require.Contains(t, first, `"logGroupArn":"`+contractLogGroup+`"`)
	require.NotContains(t, first, "max(")
	require.Equal(t, 1, strings.Count(second, "\n"), second)
	require.Contains(t, second, `"query":"max(rate(requests_total[5m]))"`)
	require.NotContains(t, second, "sum(")
}
