package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestOutOfOrderWindowThroughTheSDK: a workspace whose configuration sets
// outOfOrderTimeWindowInSeconds (UpdateWorkspaceConfiguration, through the
// AWS SDK) stores samples 5 minutes late, which queries return, from the
// ingester and, once flushed to object storage, from a store-gateway alone;
// a workspace without the window refuses the same samples as
// sample-out-of-order, and takes them once the window is set.
func TestOutOfOrderWindowThroughTheSDK(t *testing.T) {
	store := filesystemBackend(t)
	dir := t.TempDir()
	flags := append(append([]string{}, store.flags...), storeFlags...)
	v := startMonolith(t, dir, flags...)
	ctx := context.Background()
	c := ampClient(v.BaseURL())

	late, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("late")})
	require.NoError(t, err)
	plain, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("plain")})
	require.NoError(t, err)
	_, err = c.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: late.WorkspaceId, OutOfOrderTimeWindowInSeconds: aws.Int32(600)})
	require.NoError(t, err)
	cfg, err := c.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: late.WorkspaceId})
	require.NoError(t, err)
	require.Equal(t, int32(600), aws.ToInt32(cfg.WorkspaceConfiguration.OutOfOrderTimeWindowInSeconds))
	_, err = c.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: late.WorkspaceId, OutOfOrderTimeWindowInSeconds: aws.Int32(-1)})
	var invalid *types.ValidationException
	require.ErrorAs(t, err, &invalid)
	require.Equal(t, "outOfOrderTimeWindowInSeconds", *invalid.FieldList[0].Name)

	now := time.Now().Truncate(time.Second)
	series := func(ts time.Time, v float64) []byte {
		return encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "late_total"}, {Name: "job", Value: "batch"}},
			Samples: []prompb.Sample{{Timestamp: ts.UnixMilli(), Value: v}},
		}}})
	}
	for _, ws := range []string{*late.WorkspaceId, *plain.WorkspaceId} {
		_, err := remoteWriter(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write").Store(ctx, series(now, 2), 0)
		require.NoError(t, err)
	}
	_, err = remoteWriter(t, workspaceURL(v.BaseURL(), *plain.WorkspaceId)+"/api/v1/remote_write").Store(ctx, series(now.Add(-5*time.Minute), 1), 0)
	require.ErrorContains(t, err, "400")
	require.ErrorContains(t, err, "(err-vigil-sample-out-of-order)")
	_, err = remoteWriter(t, workspaceURL(v.BaseURL(), *late.WorkspaceId)+"/api/v1/remote_write").Store(ctx, series(now.Add(-5*time.Minute), 1), 0)
	require.NoError(t, err, "5 minutes late, within the workspace's 10-minute window")

	// Set on a workspace whose TSDB is open, the window takes effect at the
	// ingesters' next refresh of the workspace settings (every 15 s).
	_, err = c.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: plain.WorkspaceId, OutOfOrderTimeWindowInSeconds: aws.Int32(600)})
	require.NoError(t, err)
	plainWriter := remoteWriter(t, workspaceURL(v.BaseURL(), *plain.WorkspaceId)+"/api/v1/remote_write")
	require.Eventually(t, func() bool {
		_, err := plainWriter.Store(ctx, series(now.Add(-4*time.Minute), 1), 0)
		return err == nil
	}, 40*time.Second, time.Second, "the window set on an open TSDB never took effect")

	want := model.Matrix{{
		Metric: model.Metric{"__name__": "late_total", "job": "batch"},
		Values: []model.SamplePair{{Timestamp: model.TimeFromUnixNano(now.Add(-5 * time.Minute).UnixNano()), Value: 1}, {Timestamp: model.TimeFromUnixNano(now.UnixNano()), Value: 2}},
	}}
	rangeOf := func(base string) model.Value {
		api := promClient(t, workspaceURL(base, *late.WorkspaceId))
		got, _, _, err := api.Query(ctx, "late_total[10m]", now)
		require.NoError(t, err)
		return got
	}
	require.Equal(t, want, rangeOf(v.BaseURL()), "from the ingester")

	// Flushed to object storage (a block of in-order samples and one of
	// out-of-order samples), then served by a store-gateway alone.
	flush(t, v.AdminAddr())
	waitForBlocks(t, store.bkt, *late.WorkspaceId, 2)
	require.NoError(t, v.Stop())
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "ingester")))
	// A new process whose ingester starts empty: what it answers comes from
	// object storage.
	sg := startMonolith(t, t.TempDir(), append([]string{"-target=querier,store-gateway,ingester"}, flags...)...)
	require.Equal(t, want, rangeOf(sg.BaseURL()), "from object storage")
}
