package vigil

import (
	"context"
	"errors"
	"flag"
	"io"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/controlplane"
	"github.com/vigil-metrics/vigil/pkg/limits"
)

type failingBucket struct{ objstore.Bucket }

func (failingBucket) Get(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.New("object storage is down")
}

// TestRetentionFromConfiguration: the compactor keeps a workspace's data
// for the retentionPeriodInDays of its configuration, else the limits'
// retention, and marks nothing while the configuration cannot be read.
func TestRetentionFromConfiguration(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	store := controlplane.NewStore(controlplane.Config{Region: "us-east-1", MaxWorkspacesPerAccount: 5, StatusCacheTTL: time.Nanosecond}, bkt)
	var def limits.Limits
	def.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	require.Equal(t, model.Duration(150*24*time.Hour), def.Compactor.RetentionPeriod)
	ov, err := limits.NewOverrides(def, nil)
	require.NoError(t, err)

	configured, err := store.Create(ctx, "000000000000", controlplane.CreateInput{})
	require.NoError(t, err)
	plain, err := store.Create(ctx, "000000000000", controlplane.CreateInput{})
	require.NoError(t, err)
	days := 30
	require.NoError(t, store.UpdateConfiguration(ctx, "000000000000", configured.ID, controlplane.ConfigurationUpdate{RetentionPeriodInDays: &days}))

	r := workspaceRetention{ov, store}
	require.Equal(t, 30*24*time.Hour, r.RetentionPeriod(configured.ID))
	require.Equal(t, 150*24*time.Hour, r.RetentionPeriod(plain.ID))

	down := workspaceRetention{ov, controlplane.NewStore(controlplane.Config{Region: "us-east-1", MaxWorkspacesPerAccount: 5, StatusCacheTTL: time.Nanosecond}, failingBucket{bkt})}
	require.Zero(t, down.RetentionPeriod(configured.ID), "unknown: keep everything this round")
}
