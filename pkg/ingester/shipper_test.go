package ingester

import (
	"context"
	crand "crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

// flakyBucket fails every upload while down is set: object storage out of
// reach.
type flakyBucket struct {
	objstore.Bucket
	down    atomic.Bool
	uploads atomic.Int64
}

func (b *flakyBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	if b.down.Load() {
		return errors.New("connection refused")
	}
	b.uploads.Add(1)
	return b.Bucket.Upload(ctx, name, r, opts...)
}

// blocksIn lists the complete blocks of a workspace in bkt.
func blocksIn(t *testing.T, bkt objstore.Bucket, ws string) []*vtsdb.Meta {
	t.Helper()
	scan, err := vtsdb.ScanBucket(context.Background(), bucket.ForWorkspace(bkt, ws), nil, time.Now())
	require.NoError(t, err)
	require.Empty(t, scan.Partial)
	var out []*vtsdb.Meta
	for _, b := range scan.Index.Blocks {
		m, err := vtsdb.ReadMeta(context.Background(), bucket.ForWorkspace(bkt, ws), b.ID)
		require.NoError(t, err)
		out = append(out, m)
	}
	return out
}

func TestFlushUploadsTheHeadAsABlock(t *testing.T) {
	dir := t.TempDir()
	ing := startIngester(t, testConfig(), dir, newKV(t))
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-1", ts("up", "a", prompb.Sample{Timestamp: now - 1000, Value: 1}, prompb.Sample{Timestamp: now, Value: 2})))
	require.NoError(t, ing.Flush(context.Background(), ""))

	metas := blocksIn(t, ing.bucket, "ws-1")
	require.Len(t, metas, 1)
	m := metas[0]
	require.Equal(t, uint64(2), m.Stats.NumSamples)
	require.Equal(t, vtsdb.Origin{Workspace: "ws-1", Source: vtsdb.SourceIngester, Ingester: "ingester-test"}, m.Vigil)
	require.Equal(t, now-1000, m.MinTime)
	require.Equal(t, now+1, m.MaxTime)

	// Nothing new: a second flush uploads nothing.
	require.NoError(t, ing.Flush(context.Background(), ""))
	require.Len(t, blocksIn(t, ing.bucket, "ws-1"), 1)
	// The samples are still served by the ingester, from its local block.
	require.Len(t, read(t, ing, "ws-1")[`{__name__="up", job="a"}`], 2)
}

// TestUploadsResumeAfterObjectStorageComesBack: blocks cut while object
// storage is down are uploaded once it is back, each once; local blocks
// past retention are kept until uploaded.
func TestUploadsResumeAfterObjectStorageComesBack(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	ing, _ := newIngester(t, cfg, dir, ringmember.Store{Client: newKV(t)})
	flaky := &flakyBucket{Bucket: ing.bucket}
	ing.bucket = flaky
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	flaky.down.Store(true)

	old := time.Now().Add(-48 * time.Hour).UnixMilli()
	require.NoError(t, push(t, ing, "ws-1", ts("up", "a", prompb.Sample{Timestamp: old, Value: 1})))
	require.Error(t, ing.Flush(context.Background(), ""), "the upload fails")
	require.NoError(t, push(t, ing, "ws-1", ts("up", "a", prompb.Sample{Timestamp: old + 1000, Value: 2})))
	require.Error(t, ing.Flush(context.Background(), ""))

	u, err := ing.acquire(context.Background(), "ws-1", false)
	require.NoError(t, err)
	blocks := u.db.Blocks()
	require.Len(t, blocks, 2)
	require.Empty(t, ing.blocksToDelete(u.shipper)(blocks), "blocks past retention stay until uploaded")
	u.release()

	flaky.down.Store(false)
	ing.shipAll(context.Background())
	metas := blocksIn(t, flaky, "ws-1")
	require.Len(t, metas, 2)
	var samples uint64
	for _, m := range metas {
		samples += m.Stats.NumSamples
	}
	require.Equal(t, uint64(2), samples)
	uploads := flaky.uploads.Load()
	ing.shipAll(context.Background())
	require.Equal(t, uploads, flaky.uploads.Load(), "uploaded blocks are not uploaded again")

	u, err = ing.acquire(context.Background(), "ws-1", false)
	require.NoError(t, err)
	require.Len(t, ing.blocksToDelete(u.shipper)(u.db.Blocks()), 2, "uploaded blocks past retention go")
	u.release()
}

// TestUploadResumesAfterCrash: a block uploaded but not recorded (a crash
// between the two) is uploaded again under the same ID: one block, not two.
func TestUploadResumesAfterCrash(t *testing.T) {
	dir, store := t.TempDir(), ringmember.Store{Client: newKV(t)}
	ing := startIngester(t, testConfig(), dir, store.Client)
	require.NoError(t, push(t, ing, "ws-1", ts("up", "a", prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1})))
	require.NoError(t, ing.Flush(context.Background(), ""))
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))

	shipped := filepath.Join(dir, "ingester", "tsdb", "ws-1", shippedFile)
	require.NoError(t, os.Remove(shipped))
	// A second, partial copy as an upload cut short would leave.
	bkt := bucket.ForWorkspace(testBucket(t, dir), "ws-1")
	partial := ulid.MustNew(ulid.Now(), crand.Reader)
	require.NoError(t, bkt.Upload(context.Background(), partial.String()+"/index", strings.NewReader("x")))

	ing = startIngester(t, testConfig(), dir, store.Client)
	require.Eventually(t, func() bool { _, err := os.Stat(shipped); return err == nil }, 10*time.Second, 10*time.Millisecond)
	scan, err := vtsdb.ScanBucket(context.Background(), bkt, nil, time.Now())
	require.NoError(t, err)
	require.Len(t, scan.Index.Blocks, 1)
	require.Contains(t, scan.Partial, partial)
}

func TestDeletedWorkspaceIsRemovedFromDisk(t *testing.T) {
	dir := t.TempDir()
	ing := startIngester(t, testConfig(), dir, newKV(t))
	now := time.Now().UnixMilli()
	require.NoError(t, push(t, ing, "ws-gone", ts("up", "a", prompb.Sample{Timestamp: now, Value: 1})))
	require.NoError(t, push(t, ing, "ws-kept", ts("up", "a", prompb.Sample{Timestamp: now, Value: 1})))
	require.NoError(t, vtsdb.WriteWorkspaceDeletionMark(context.Background(), bucket.ForWorkspace(ing.bucket, "ws-gone"), time.Now()))

	ing.removeDeleted(context.Background())
	_, err := os.Stat(filepath.Join(dir, "ingester", "tsdb", "ws-gone"))
	require.True(t, os.IsNotExist(err), "the TSDB and WAL of the deleted workspace are gone")
	require.Empty(t, read(t, ing, "ws-gone"))
	require.Len(t, read(t, ing, "ws-kept"), 1)
}
