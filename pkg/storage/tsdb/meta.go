// Package tsdb holds what every component that stores or reads blocks in
// object storage agrees on: the block layout and its meta.json, the upload
// order that makes a block visible only once complete, deletion marks, the
// per-workspace bucket index and the workspace deletion mark.
//
// Each workspace's objects live under their own prefix (see
// bucket.ForWorkspace); every function here takes a bucket already scoped to
// one workspace.
package tsdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
)

// Names inside a block directory, as the TSDB writes them.
const (
	MetaFilename  = "meta.json"
	IndexFilename = "index"
	ChunksDirname = "chunks"
)

// metaVersion1 is the only meta.json version the TSDB writes.
const metaVersion1 = 1

// Sources of a block.
const (
	SourceIngester  = "ingester"
	SourceCompactor = "compactor"
)

// Meta is a block's meta.json: the TSDB's own fields plus where the block
// came from. The TSDB ignores the extra section, so a downloaded block opens
// with Prometheus's tools.
type Meta struct {
	tsdb.BlockMeta
	Vigil Origin `json:"vigil"`
}

// Origin records where a block was made.
type Origin struct {
	Workspace string `json:"workspace"`
	Source    string `json:"source"`
	// Ingester and Zone are set on blocks cut by an ingester: the RF
	// copies of one time range differ by them until compacted.
	Ingester string `json:"ingester,omitempty"`
	Zone     string `json:"zone,omitempty"`
}

// ReadLocalMeta reads the meta.json of a block directory.
func ReadLocalMeta(dir string) (*Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, MetaFilename))
	if err != nil {
		return nil, err
	}
	return decodeMeta(b)
}

func decodeMeta(b []byte) (*Meta, error) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", MetaFilename, err)
	}
	if m.Version != metaVersion1 {
		return nil, fmt.Errorf("unsupported %s version %d", MetaFilename, m.Version)
	}
	return &m, nil
}

// ErrNoMeta is returned by ReadMeta for a block without meta.json: one
// being uploaded, or left behind by an upload that failed.
var ErrNoMeta = errors.New("block has no meta.json: partially uploaded")

// ReadMeta reads a block's meta.json from bkt.
func ReadMeta(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID) (*Meta, error) {
	r, err := bkt.Get(ctx, path.Join(id.String(), MetaFilename))
	if bkt.IsObjNotFoundErr(err) {
		return nil, ErrNoMeta
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return decodeMeta(b)
}

// Upload uploads the block in dir under its ID: chunks and index first,
// meta.json (holding meta) last. A block is complete once its meta.json
// exists, so an upload cut short is never read as a block; uploading the
// same block again overwrites the same objects with the same bytes.
func Upload(ctx context.Context, logger log.Logger, bkt objstore.Bucket, dir string, meta *Meta) error {
	id := meta.ULID.String()
	if err := objstore.UploadDir(ctx, logger, bkt, filepath.Join(dir, ChunksDirname), path.Join(id, ChunksDirname)); err != nil {
		return fmt.Errorf("upload chunks of block %s: %w", id, err)
	}
	if err := objstore.UploadFile(ctx, logger, bkt, filepath.Join(dir, IndexFilename), path.Join(id, IndexFilename)); err != nil {
		return fmt.Errorf("upload index of block %s: %w", id, err)
	}
	b, err := json.MarshalIndent(meta, "", "\t")
	if err != nil {
		return err
	}
	if err := bkt.Upload(ctx, path.Join(id, MetaFilename), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("upload meta of block %s: %w", id, err)
	}
	return nil
}

// Delete deletes a block: its meta.json first, so that a deletion cut short
// leaves a partial block (cleaned up later), never a block missing data.
func Delete(ctx context.Context, bkt objstore.Bucket, id ulid.ULID) error {
	if err := bkt.Delete(ctx, path.Join(id.String(), MetaFilename)); err != nil && !bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete meta of block %s: %w", id, err)
	}
	if err := deleteDir(ctx, bkt, id.String()); err != nil {
		return err
	}
	if err := bkt.Delete(ctx, DeletionMarkName(id)); err != nil && !bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete deletion mark of block %s: %w", id, err)
	}
	return nil
}

// deleteDir deletes every object under dir.
func deleteDir(ctx context.Context, bkt objstore.Bucket, dir string) error {
	var names []string
	if err := bkt.Iter(ctx, dir+"/", func(name string) error {
		names = append(names, name)
		return nil
	}, objstore.WithRecursiveIter()); err != nil {
		return err
	}
	for _, name := range names {
		if err := bkt.Delete(ctx, name); err != nil && !bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("delete %s: %w", name, err)
		}
	}
	return nil
}
