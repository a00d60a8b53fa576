package bucket

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestWorkspaceViewAndMetrics: a workspace's view of the shared client keeps
// its objects under workspaces/<id>/, and every operation is counted.
func TestWorkspaceViewAndMetrics(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	bkt, err := NewInstrumentedClient(Config{Backend: Filesystem}, dir, reg, log.NewNopLogger())
	require.NoError(t, err)
	defer bkt.Close()

	ctx := context.Background()
	ws := ForWorkspace(bkt, "ws-1")
	require.NoError(t, ws.Upload(ctx, "blocks/meta.json", bytes.NewReader([]byte("{}"))))
	_, err = os.Stat(filepath.Join(dir, "bucket", "workspaces", "ws-1", "blocks", "meta.json"))
	require.NoError(t, err)

	other := ForWorkspace(bkt, "ws-2")
	ok, err := other.Exists(ctx, "blocks/meta.json")
	require.NoError(t, err)
	require.False(t, ok, "one workspace's objects are invisible to another")

	r, err := ws.Get(ctx, "blocks/meta.json")
	require.NoError(t, err)
	b, _ := io.ReadAll(r)
	require.NoError(t, r.Close())
	require.Equal(t, "{}", string(b))

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_objstore_bucket_operations_total Total number of all attempted operations against a bucket.
# TYPE vigil_objstore_bucket_operations_total counter
vigil_objstore_bucket_operations_total{bucket="vigil",operation="attributes"} 0
vigil_objstore_bucket_operations_total{bucket="vigil",operation="delete"} 0
vigil_objstore_bucket_operations_total{bucket="vigil",operation="exists"} 1
vigil_objstore_bucket_operations_total{bucket="vigil",operation="get"} 1
vigil_objstore_bucket_operations_total{bucket="vigil",operation="get_range"} 0
vigil_objstore_bucket_operations_total{bucket="vigil",operation="iter"} 0
vigil_objstore_bucket_operations_total{bucket="vigil",operation="upload"} 1
`), "vigil_objstore_bucket_operations_total"))
}
