package tsdb

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
)

// MarkersDir holds the deletion marks of a workspace's blocks, so that one
// listing finds them all, and the workspace's own deletion mark.
const MarkersDir = "markers"

// deletionMarkSuffix ends the name of a block's deletion mark. A marked block
// stays readable until the compactor deletes it after
// -compactor.deletion-delay, so that queriers and store-gateways holding an
// older bucket index still find it.
const deletionMarkSuffix = "-deletion-mark.json"

// DeletionMarkName is the object name of a block's deletion mark.
func DeletionMarkName(id ulid.ULID) string {
	return path.Join(MarkersDir, id.String()+deletionMarkSuffix)
}

// deletionMarkID returns the block a deletion mark's object name is for.
func deletionMarkID(name string) (ulid.ULID, bool) {
	base := path.Base(name)
	if !strings.HasSuffix(base, deletionMarkSuffix) {
		return ulid.ULID{}, false
	}
	id, err := ulid.Parse(strings.TrimSuffix(base, deletionMarkSuffix))
	return id, err == nil
}

// DeletionMark is the content of a block's deletion mark.
type DeletionMark struct {
	ID ulid.ULID `json:"id"`
	// DeletionTime is when the block was marked, in Unix seconds.
	DeletionTime int64 `json:"deletion_time"`
	Version      int   `json:"version"`
}

// MarkForDeletion writes a block's deletion mark, unless it has one.
func MarkForDeletion(ctx context.Context, bkt objstore.Bucket, id ulid.ULID, now time.Time) error {
	name := DeletionMarkName(id)
	if ok, err := bkt.Exists(ctx, name); err != nil || ok {
		return err
	}
	b, err := json.Marshal(DeletionMark{ID: id, DeletionTime: now.Unix(), Version: 1})
	if err != nil {
		return err
	}
	if err := bkt.Upload(ctx, name, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("mark block %s for deletion: %w", id, err)
	}
	return nil
}

// readDeletionMarks reads every block deletion mark of the workspace.
func readDeletionMarks(ctx context.Context, bkt objstore.BucketReader) (map[ulid.ULID]DeletionMark, error) {
	out := map[ulid.ULID]DeletionMark{}
	var names []string
	err := bkt.Iter(ctx, MarkersDir+"/", func(name string) error {
		if _, ok := deletionMarkID(name); ok {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		var m DeletionMark
		found, err := readJSON(ctx, bkt, name, &m)
		if err != nil {
			return nil, err
		}
		if found {
			out[m.ID] = m
		}
	}
	return out, nil
}

// WorkspaceDeletionMarkName is the object marking a deleted workspace's data
// for deletion. It outlives the data it marks, so that an ingester that was
// down during the whole grace period still deletes its copy when it returns.
const WorkspaceDeletionMarkName = "markers/workspace-deletion-mark.json"

// WorkspaceDeletionMark records when a workspace was deleted.
type WorkspaceDeletionMark struct {
	// DeletionTime is when the workspace was deleted, in Unix seconds.
	DeletionTime int64 `json:"deletion_time"`
	// Finished is set once the compactor deleted every block.
	Finished bool `json:"finished,omitempty"`
}

// WriteWorkspaceDeletionMark records that the workspace whose objects bkt
// holds is deleted, unless it is already recorded.
func WriteWorkspaceDeletionMark(ctx context.Context, bkt objstore.Bucket, now time.Time) error {
	if m, err := ReadWorkspaceDeletionMark(ctx, bkt); err != nil || m != nil {
		return err
	}
	return putWorkspaceDeletionMark(ctx, bkt, &WorkspaceDeletionMark{DeletionTime: now.Unix()})
}

func putWorkspaceDeletionMark(ctx context.Context, bkt objstore.Bucket, m *WorkspaceDeletionMark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return bkt.Upload(ctx, WorkspaceDeletionMarkName, bytes.NewReader(b))
}

// ReadWorkspaceDeletionMark reads the workspace's deletion mark; nil when
// the workspace is not deleted.
func ReadWorkspaceDeletionMark(ctx context.Context, bkt objstore.BucketReader) (*WorkspaceDeletionMark, error) {
	var m WorkspaceDeletionMark
	found, err := readJSON(ctx, bkt, WorkspaceDeletionMarkName, &m)
	if err != nil || !found {
		return nil, err
	}
	return &m, nil
}

func readJSON(ctx context.Context, bkt objstore.BucketReader, name string, v any) (bool, error) {
	r, err := bkt.Get(ctx, name)
	if bkt.IsObjNotFoundErr(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", name, err)
	}
	return true, nil
}

// DeleteWorkspaceData deletes every object of a deleted workspace but its
// deletion mark, blocks first (each meta.json first), and records in the
// mark that the deletion finished.
func DeleteWorkspaceData(ctx context.Context, bkt objstore.Bucket, mark *WorkspaceDeletionMark) error {
	var names []string
	if err := bkt.Iter(ctx, "", func(name string) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return err
	}
	for _, name := range names {
		if id, err := ulid.Parse(strings.TrimSuffix(name, "/")); err == nil && strings.HasSuffix(name, "/") {
			if err := Delete(ctx, bkt, id); err != nil {
				return err
			}
		}
	}
	names = names[:0]
	if err := bkt.Iter(ctx, "", func(name string) error {
		if name != WorkspaceDeletionMarkName {
			names = append(names, name)
		}
		return nil
	}, objstore.WithRecursiveIter()); err != nil {
		return err
	}
	for _, name := range names {
		if err := bkt.Delete(ctx, name); err != nil && !bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("delete %s: %w", name, err)
		}
	}
	done := *mark
	done.Finished = true
	return putWorkspaceDeletionMark(ctx, bkt, &done)
}
