package ingester

import (
	"context"
	"os"
	"path/filepath"

	"github.com/go-kit/log/level"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

func errWorkspaceDeleted(id string) error {
	return apierror.New(apierror.NotFound, apierror.IDWorkspaceNotActive, "Workspace %s is deleted", id)
}

func (i *Ingester) isDeleting(id string) bool {
	i.mu.RLock()
	defer i.mu.RUnlock()
	_, ok := i.deleting[id]
	return ok
}

// removeDeleted removes the local TSDB and WAL of every workspace whose
// deletion mark is in object storage. The mark outlives the workspace's
// blocks, so an ingester that was down when the workspace was deleted
// removes its copy when it is back.
func (i *Ingester) removeDeleted(ctx context.Context) {
	ids, err := i.localWorkspaces()
	if err != nil {
		level.Warn(i.logger).Log("msg", "cannot list local workspaces", "err", err)
		return
	}
	for _, id := range ids {
		mark, err := vtsdb.ReadWorkspaceDeletionMark(ctx, bucket.ForWorkspace(i.bucket, id))
		if err != nil {
			level.Warn(i.logger).Log("msg", "cannot read workspace deletion mark", "workspace", id, "err", err)
			continue
		}
		if mark == nil {
			continue
		}
		if err := i.removeWorkspace(id); err != nil {
			level.Warn(i.logger).Log("msg", "cannot remove deleted workspace's tsdb; retrying later", "workspace", id, "err", err)
			continue
		}
		i.metrics.deletedWorkspaces.Inc()
		level.Info(i.logger).Log("msg", "removed the tsdb and wal of a deleted workspace", "workspace", id)
	}
}

// removeWorkspace closes the workspace's TSDB once unused and removes its
// directory. Requests for it are refused meanwhile, so that none reopens it.
func (i *Ingester) removeWorkspace(id string) error {
	i.mu.Lock()
	i.deleting[id] = struct{}{}
	u := i.dbs[id]
	i.mu.Unlock()
	i.metadata.forget(id)
	defer func() {
		i.mu.Lock()
		delete(i.deleting, id)
		i.mu.Unlock()
	}()
	if u != nil {
		if err := i.closeWhenUnused(id, u); err != nil {
			return err
		}
	}
	return os.RemoveAll(filepath.Join(i.dir, id))
}
