package ingester

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/prometheus/config"
)

// OutOfOrderWindows gives each workspace's out-of-order window: how far
// behind the workspace's newest sample (its TSDB head's) a sample older than
// the newest of its series may be and still be stored.
type OutOfOrderWindows interface {
	OutOfOrderTimeWindow(ctx context.Context, workspace string) (time.Duration, error)
}

// SetOutOfOrderWindows makes the workspaces' TSDBs take out-of-order samples
// within the windows src gives; call it before the ingester starts. Without
// it no TSDB takes any.
func (i *Ingester) SetOutOfOrderWindows(src OutOfOrderWindows) { i.outOfOrder = src }

// outOfOrderWindow is the workspace's window in milliseconds; ok is false
// when it cannot be read.
func (i *Ingester) outOfOrderWindow(ctx context.Context, id string) (ms int64, ok bool) {
	if i.outOfOrder == nil {
		return 0, true
	}
	w, err := i.outOfOrder.OutOfOrderTimeWindow(ctx, id)
	if err != nil {
		level.Warn(i.logger).Log("msg", "cannot read the workspace's out-of-order window; the current one stays", "workspace", id, "err", err)
		return 0, false
	}
	return max(w.Milliseconds(), 0), true
}

// exemplarsMarker, in a workspace's directory, says it has sent exemplars.
const exemplarsMarker = "exemplars-used"

// maxExemplars is the size of the workspace's exemplar storage on this
// ingester: its share of the workspace's limit once it has sent exemplars.
func (i *Ingester) maxExemplars(id string, u *userDB) int64 {
	if i.metadataLimits == nil || !u.exemplarsUsed.Load() {
		return 0
	}
	return i.share.Load().local(i.metadataLimits.MaxGlobalExemplarsPerUser(id))
}

// applyOutOfOrder gives an open TSDB its workspace's current out-of-order
// window and exemplar storage size, when they changed (the TSDB takes both
// in one configuration). Samples already stored out of order stay; the
// head's out-of-order chunks are compacted into blocks of their own, which
// are shipped and merged in object storage like the others. A resized
// exemplar storage keeps the newest exemplars that fit.
func (i *Ingester) applyOutOfOrder(ctx context.Context, id string, u *userDB) {
	w, ok := i.outOfOrderWindow(ctx, id)
	if !ok {
		w = u.outOfOrderWindow.Load()
	}
	ex := i.maxExemplars(id, u)
	if w == u.outOfOrderWindow.Load() && ex == u.maxExemplars.Load() {
		return
	}
	conf := &config.Config{StorageConfig: config.StorageConfig{
		TSDBConfig:      &config.TSDBConfig{OutOfOrderTimeWindow: w},
		ExemplarsConfig: &config.ExemplarsConfig{MaxExemplars: ex},
	}}
	// No push appends meanwhile: turning the window on gives the head its
	// out-of-order WAL, which commits read without a lock.
	u.appendMu.Lock()
	err := u.db.ApplyConfig(conf)
	u.appendMu.Unlock()
	if err != nil {
		level.Warn(i.logger).Log("msg", "cannot change the workspace's out-of-order window or exemplar storage", "workspace", id, "window", time.Duration(w)*time.Millisecond, "max_exemplars", ex, "err", err)
		return
	}
	if u.outOfOrderWindow.Swap(w) != w {
		level.Info(i.logger).Log("msg", "out-of-order window changed", "workspace", id, "window", time.Duration(w)*time.Millisecond)
	}
	u.maxExemplars.Store(ex)
}

// useExemplars allocates the exemplar storage of a workspace that sends its
// first exemplars (before they are appended), and leaves a marker so that
// it is allocated again when the TSDB is reopened and its WAL replayed.
func (i *Ingester) useExemplars(ctx context.Context, id string, u *userDB) {
	if u.exemplarsUsed.Swap(true) {
		return
	}
	if err := os.WriteFile(filepath.Join(i.dir, id, exemplarsMarker), nil, 0o644); err != nil {
		level.Warn(i.logger).Log("msg", "cannot mark the workspace as sending exemplars; after a restart its exemplars wait for the next one", "workspace", id, "err", err)
	}
	i.applyOutOfOrder(ctx, id, u)
}
