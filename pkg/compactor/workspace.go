package compactor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-kit/log/level"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/logging"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

// cleanWorkspace deletes the data of a deleted workspace once its delay has
// passed; for a live one it rewrites the bucket index after deleting the
// blocks marked long enough ago and the failed uploads, and marks the blocks
// past retention. It reports whether the workspace is live.
func (c *Compactor) cleanWorkspace(ctx context.Context, id string) (bool, error) {
	bkt := c.workspaceBucket(id)
	now := c.now()
	mark, err := c.deletionMark(ctx, id, bkt, now)
	if err != nil {
		return false, err
	}
	if mark != nil {
		if now.Sub(time.Unix(mark.DeletionTime, 0)) < c.cfg.WorkspaceDeletionDelay {
			return false, nil
		}
		if mark.Finished {
			// Only objects written since the deletion (an ingester that was
			// down then) are left to delete.
			if clean, err := onlyMark(ctx, bkt); err != nil || clean {
				return false, err
			}
		}
		if err := vtsdb.DeleteWorkspaceData(ctx, bkt, mark); err != nil {
			return false, fmt.Errorf("delete data of deleted workspace: %w", err)
		}
		level.Info(c.logger).Log("msg", "deleted the data of a deleted workspace", "workspace", id)
		return false, nil
	}

	old, err := vtsdb.ReadIndex(ctx, bkt)
	if err != nil && !errors.Is(err, vtsdb.ErrIndexNotFound) {
		level.Warn(c.logger).Log("msg", "bucket index unreadable; rebuilding it", "workspace", id, "err", err)
	}
	scan, err := vtsdb.ScanBucket(ctx, bkt, old, now)
	if err != nil {
		return true, err
	}
	idx := scan.Index
	for block, last := range scan.Partial {
		if last.IsZero() {
			last = ulid.Time(block.Time())
		}
		if now.Sub(last) < c.cfg.PartialBlockDelay {
			continue
		}
		if err := vtsdb.Delete(ctx, bkt, block); err != nil {
			return true, err
		}
		c.deletedBlocks.Inc()
		level.Info(c.logger).Log("msg", "deleted partial block", "workspace", id, "block", block, "last_written", last)
	}

	// Blocks marked long enough ago go; the others stay listed with their
	// marks (queriers skip them).
	deleted := map[ulid.ULID]bool{}
	var marks []vtsdb.DeletionMark
	for _, m := range idx.DeletionMarks {
		if now.Sub(time.Unix(m.DeletionTime, 0)) < c.cfg.DeletionDelay {
			marks = append(marks, m)
			continue
		}
		if err := vtsdb.Delete(ctx, bkt, m.ID); err != nil {
			return true, err
		}
		deleted[m.ID] = true
		c.deletedBlocks.Inc()
	}
	blocks := idx.Blocks[:0]
	for _, b := range idx.Blocks {
		if !deleted[b.ID] {
			blocks = append(blocks, b)
		}
	}
	idx.Blocks, idx.DeletionMarks = blocks, marks

	if r := c.limits.RetentionPeriod(id); r > 0 {
		cutoff := now.Add(-r).UnixMilli()
		for _, b := range idx.Blocks {
			if _, marked := idx.DeletionMark(b.ID); marked || b.MaxTime > cutoff {
				continue
			}
			if err := vtsdb.MarkForDeletion(ctx, bkt, b.ID, now); err != nil {
				return true, err
			}
			idx.DeletionMarks = append(idx.DeletionMarks, vtsdb.DeletionMark{ID: b.ID, DeletionTime: now.Unix(), Version: 1})
			c.markedBlocks.WithLabelValues("retention").Inc()
			level.Info(c.logger).Log("msg", "marked block past retention for deletion", "workspace", id, "block", b.ID, "retention", r)
		}
	}
	return true, vtsdb.WriteIndex(ctx, bkt, idx)
}

// onlyMark reports whether the deletion mark is the workspace's only object.
func onlyMark(ctx context.Context, bkt objstore.Bucket) (bool, error) {
	only := true
	err := bkt.Iter(ctx, "", func(name string) error {
		if name != vtsdb.MarkersDir+"/" {
			only = false
		}
		return nil
	})
	if err != nil || !only {
		return false, err
	}
	err = bkt.Iter(ctx, vtsdb.MarkersDir+"/", func(name string) error {
		if name != vtsdb.WorkspaceDeletionMarkName {
			only = false
		}
		return nil
	})
	return only, err
}

// deletionMark returns the workspace's deletion mark, writing one first for
// a workspace that no longer exists.
func (c *Compactor) deletionMark(ctx context.Context, id string, bkt objstore.Bucket, now time.Time) (*vtsdb.WorkspaceDeletionMark, error) {
	mark, err := vtsdb.ReadWorkspaceDeletionMark(ctx, bkt)
	if err != nil || mark != nil || c.workspaces == nil {
		return mark, err
	}
	exists, err := c.workspaces.Exists(ctx, id)
	if err != nil || exists {
		return nil, err
	}
	level.Info(c.logger).Log("msg", "workspace no longer exists; marking its data for deletion", "workspace", id)
	if err := vtsdb.WriteWorkspaceDeletionMark(ctx, bkt, now); err != nil {
		return nil, err
	}
	return vtsdb.ReadWorkspaceDeletionMark(ctx, bkt)
}

// maxCompactionsPerRun bounds the groups one pass compacts per workspace;
// the next pass goes on.
const maxCompactionsPerRun = 64

// compactWorkspace compacts the workspace's blocks as the TSDB's own planner
// picks them: overlapping blocks first (the replica copies of one range,
// merged into one block with each sample once), then aligned runs of blocks
// into the next level's range. Each group is downloaded, compacted locally,
// uploaded, and its sources marked for deletion.
func (c *Compactor) compactWorkspace(ctx context.Context, id string) error {
	bkt := c.workspaceBucket(id)
	work := filepath.Join(c.dir, id)
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	defer os.RemoveAll(work)
	now := c.now()
	wait := time.Now().Add(-c.cfg.FirstLevelWait)
	lc, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, logging.Slog(c.logger), c.cfg.BlockRanges.millis(), nil, tsdb.LeveledCompactorOptions{
		MergeFunc:                   storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge),
		EnableOverlappingCompaction: true,
		// Blocks just uploaded wait for their replicas (ULIDs are in
		// creation order: the planner stops at the first one excluded).
		BlockExcludeFilter: func(m *tsdb.BlockMeta) bool {
			return m.Compaction.Level == 1 && ulid.Time(m.ULID.Time()).After(wait)
		},
	})
	if err != nil {
		return err
	}
	for n := 0; n < maxCompactionsPerRun; n++ {
		idx, err := vtsdb.ReadIndex(ctx, bkt)
		if err != nil {
			return err
		}
		plan, err := planGroup(lc, filepath.Join(work, "plan"), idx)
		if err != nil || len(plan) == 0 {
			return err
		}
		if err := c.compactGroup(ctx, id, bkt, lc, work, plan, now); err != nil {
			return err
		}
		// The next plan sees the new block and the marks.
		if _, err := c.cleanWorkspace(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// planGroup asks the TSDB's planner which blocks to compact next, handing
// it one directory per unmarked block holding only its meta.json.
func planGroup(lc *tsdb.LeveledCompactor, dir string, idx *vtsdb.Index) ([]ulid.ULID, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	for _, b := range idx.Blocks {
		if _, marked := idx.DeletionMark(b.ID); marked {
			continue
		}
		meta := tsdb.BlockMeta{ULID: b.ID, MinTime: b.MinTime, MaxTime: b.MaxTime, Version: 1}
		meta.Compaction.Level = b.Level
		meta.Stats.NumSeries, meta.Stats.NumSamples = b.Series, b.Samples
		bdir := filepath.Join(dir, b.ID.String())
		if err := os.MkdirAll(bdir, 0o755); err != nil {
			return nil, err
		}
		if err := writeMeta(bdir, &meta); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil, nil
	}
	dirs, err := lc.Plan(dir)
	if err != nil {
		return nil, err
	}
	out := make([]ulid.ULID, 0, len(dirs))
	for _, d := range dirs {
		id, err := ulid.Parse(filepath.Base(d))
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

// compactGroup downloads the blocks of a group, compacts them into one,
// uploads it and marks the sources for deletion.
func (c *Compactor) compactGroup(ctx context.Context, id string, bkt objstore.Bucket, lc *tsdb.LeveledCompactor, work string, group []ulid.ULID, now time.Time) error {
	src, out := filepath.Join(work, "src"), filepath.Join(work, "out")
	defer os.RemoveAll(src)
	defer os.RemoveAll(out)
	dirs := make([]string, 0, len(group))
	for _, b := range group {
		d := filepath.Join(src, b.String())
		if err := objstore.DownloadDir(ctx, c.logger, bkt, b.String(), b.String(), d); err != nil {
			return fmt.Errorf("download block %s: %w", b, err)
		}
		dirs = append(dirs, d)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	start := time.Now()
	created, err := lc.Compact(out, dirs, nil)
	if err != nil {
		return fmt.Errorf("compact blocks %v: %w", group, err)
	}
	for _, b := range created {
		dir := filepath.Join(out, b.String())
		meta, err := vtsdb.ReadLocalMeta(dir)
		if err != nil {
			return err
		}
		meta.Vigil = vtsdb.Origin{Workspace: id, Source: vtsdb.SourceCompactor}
		if err := vtsdb.Upload(ctx, c.logger, bkt, dir, meta); err != nil {
			return err
		}
		level.Info(c.logger).Log("msg", "compacted blocks", "workspace", id, "sources", fmt.Sprint(group), "block", b,
			"mint", meta.MinTime, "maxt", meta.MaxTime, "samples", meta.Stats.NumSamples, "duration", time.Since(start))
	}
	// An empty result (every series deleted) creates no block: the sources
	// go all the same.
	for _, b := range group {
		if err := vtsdb.MarkForDeletion(ctx, bkt, b, now); err != nil {
			return err
		}
		c.markedBlocks.WithLabelValues("compacted").Inc()
	}
	c.compactions.Inc()
	return nil
}
