package tsdb

import (
	"context"
	crand "crypto/rand"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
)

// putBlock uploads a block with only meta.json and a chunk object: what
// the index and markers look at.
func putBlock(t *testing.T, bkt objstore.Bucket, mint, maxt int64, origin Origin) ulid.ULID {
	t.Helper()
	dir := t.TempDir()
	id := ulid.MustNew(ulid.Now(), entropy)
	meta := &Meta{BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: mint, MaxTime: maxt, Version: 1}, Vigil: origin}
	meta.Compaction.Level = 1
	meta.Stats.NumSamples = 10
	writeFiles(t, dir)
	require.NoError(t, Upload(context.Background(), log.NewNopLogger(), bkt, dir, meta))
	return id
}

func TestScanBucketFindsBlocksPartialsAndMarks(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	origin := Origin{Workspace: "ws-1", Source: SourceIngester, Ingester: "ing-a", Zone: "a"}
	b1 := putBlock(t, bkt, 0, 7200_000, origin)
	b2 := putBlock(t, bkt, 7200_000, 14400_000, origin)
	partial := ulid.MustNew(ulid.Now(), entropy)
	require.NoError(t, bkt.Upload(ctx, partial.String()+"/index", strings.NewReader("x")))
	now := time.Unix(1000, 0)
	require.NoError(t, MarkForDeletion(ctx, bkt, b1, now))
	require.NoError(t, MarkForDeletion(ctx, bkt, b1, now.Add(time.Hour)), "marking twice keeps the first mark")
	require.NoError(t, WriteWorkspaceDeletionMark(ctx, bkt, now))

	scan, err := ScanBucket(ctx, bkt, nil, now)
	require.NoError(t, err)
	require.Len(t, scan.Index.Blocks, 2)
	require.Equal(t, b1, scan.Index.Blocks[0].ID)
	require.Equal(t, Block{ID: b2, MinTime: 7200_000, MaxTime: 14400_000, UploadedAt: 1000, Level: 1,
		Source: SourceIngester, Ingester: "ing-a", Zone: "a", Samples: 10}, scan.Index.Blocks[1])
	require.Contains(t, scan.Partial, partial)
	require.Equal(t, []DeletionMark{{ID: b1, DeletionTime: 1000, Version: 1}}, scan.Index.DeletionMarks)

	require.NoError(t, WriteIndex(ctx, bkt, scan.Index))
	idx, err := ReadIndex(ctx, bkt)
	require.NoError(t, err)
	require.Equal(t, scan.Index, idx)

	// A later scan keeps what the index knew (its upload time included).
	later, err := ScanBucket(ctx, bkt, idx, now.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(1000), later.Index.Blocks[1].UploadedAt)

	require.NoError(t, Delete(ctx, bkt, b1))
	later, err = ScanBucket(ctx, bkt, nil, now)
	require.NoError(t, err)
	require.Len(t, later.Index.Blocks, 1)
	require.Empty(t, later.Index.DeletionMarks)
	m, err := ReadWorkspaceDeletionMark(ctx, bkt)
	require.NoError(t, err)
	require.Equal(t, int64(1000), m.DeletionTime)

	_, err = ReadIndex(ctx, objstore.NewInMemBucket())
	require.ErrorIs(t, err, ErrIndexNotFound)
}

// entropy makes the IDs of one test increase, also within a millisecond.
var entropy = ulid.Monotonic(crand.Reader, 0)

// countingBucket counts the objects read.
type countingBucket struct {
	objstore.Bucket
	gets int
}

func (b *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.gets++
	return b.Bucket.Get(ctx, name)
}

func TestListBlocksIsBounded(t *testing.T) {
	ctx := context.Background()
	bkt := &countingBucket{Bucket: objstore.NewInMemBucket()}
	origin := Origin{Workspace: "ws-1", Source: SourceIngester}
	b1 := putBlock(t, bkt, 0, 7200_000, origin)
	putBlock(t, bkt, 7200_000, 14400_000, origin)
	partial := ulid.MustNew(ulid.Now(), entropy)
	require.NoError(t, bkt.Upload(ctx, partial.String()+"/index", strings.NewReader("x")))
	now := time.Unix(1000, 0)
	require.NoError(t, MarkForDeletion(ctx, bkt, b1, now))

	bkt.gets = 0
	idx, err := ListBlocks(ctx, bkt, nil, now, 3)
	require.NoError(t, err)
	require.Len(t, idx.Blocks, 2, "the partial upload is no block")
	require.Equal(t, []DeletionMark{{ID: b1, DeletionTime: 1000, Version: 1}}, idx.DeletionMarks)
	require.Equal(t, now.Unix(), idx.UpdatedAt)
	reads := bkt.gets

	bkt.gets = 0
	again, err := ListBlocks(ctx, bkt, idx, now, 3)
	require.NoError(t, err)
	require.Equal(t, idx.Blocks, again.Blocks)
	require.Less(t, bkt.gets, reads, "the blocks listed before are not read again")

	bkt.gets = 0
	_, err = ListBlocks(ctx, bkt, nil, now, 2)
	require.ErrorIs(t, err, ErrTooManyBlocks)
	require.ErrorContains(t, err, "more than 2")
	require.Equal(t, 1, bkt.gets, "only the deletion marks were read: no meta.json past the bound")
}
