package ingester

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/logging"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// openRetryBackoff is how long a workspace whose TSDB failed to open answers
// with that failure before the next request tries to open it again: a
// broken TSDB must not cost a WAL replay per request.
const openRetryBackoff = 30 * time.Second

func (i *Ingester) tsdbOptions(series *seriesCounter, s *shipper) *tsdb.Options {
	o := tsdb.DefaultOptions()
	o.SeriesLifecycleCallback = series
	o.MinBlockDuration = i.cfg.BlockRange.Milliseconds()
	o.MaxBlockDuration = i.cfg.BlockRange.Milliseconds()
	o.RetentionDuration = i.cfg.Retention.Milliseconds()
	o.BlocksToDelete = i.blocksToDelete(s)
	// Blocks are cut from the head only: they never overlap, except one
	// cut by a flush and the next, which object storage merges.
	o.EnableOverlappingCompaction = false
	o.IsolationDisabled = !i.cfg.Isolation
	if i.cfg.WALCompression {
		o.WALCompression = compression.Snappy
	}
	return o
}

// openTSDB opens the TSDB in dir; tests replace it.
func openTSDB(dir string, logger log.Logger, opts *tsdb.Options) (*tsdb.DB, error) {
	return tsdb.Open(dir, logging.Slog(logger), nil, opts, nil)
}

// entry returns the workspace's userDB, registering a new one (which the
// caller must then open) when create is set and there is none.
func (i *Ingester) entry(id string, create bool) (u *userDB, mustOpen bool, err error) {
	i.mu.RLock()
	u, stopping := i.dbs[id], i.shuttingDown
	i.mu.RUnlock()
	if stopping {
		return nil, false, errStopping
	}
	if u == nil && i.isDeleting(id) {
		return nil, false, errWorkspaceDeleted(id)
	}
	if u != nil || !create {
		return u, false, nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.shuttingDown {
		return nil, false, errStopping
	}
	if u = i.dbs[id]; u != nil {
		return u, false, nil
	}
	if _, ok := i.deleting[id]; ok {
		return nil, false, errWorkspaceDeleted(id)
	}
	u = &userDB{
		opened:  make(chan struct{}),
		done:    make(chan struct{}),
		refs:    newRefCache(),
		shipper: &shipper{dir: filepath.Join(i.dir, id)},
		series:  &seriesCounter{total: &i.series, max: i.cfg.InstanceLimits.MaxSeries},
	}
	i.dbs[id] = u
	i.metrics.openTSDBs.Set(float64(len(i.dbs)))
	return u, true, nil
}

// open opens the TSDB of a registered entry, replaying its WAL. Only the
// TSDB's own workspace waits for it; other workspaces go on. A TSDB that
// fails to open stays registered with its error for openRetryBackoff, so
// that its workspace answers 500 at once while the others work.
func (i *Ingester) open(id string, u *userDB) {
	dir := filepath.Join(i.dir, id)
	// The workspace was last used when its WAL was last written, not now: a
	// TSDB opened at start-up closes again once idle for the idle timeout.
	// (Opening starts a new WAL segment: look before.)
	lastUsed := lastWrite(dir, i.now())
	opts := i.tsdbOptions(u.series, u.shipper)
	// The workspace's out-of-order window holds from the WAL's replay (an
	// unreadable one is set once it can be read).
	if w, ok := i.outOfOrderWindow(context.Background(), id); ok {
		opts.OutOfOrderTimeWindow = w
		u.outOfOrderWindow.Store(w)
	}
	// The exemplar storage always exists, so that a workspace whose limit
	// changes from 0 gets it without a reopen. Its size is the limit once
	// the workspace has sent exemplars (a ring buffer of that size is
	// allocated whole), 0 before: a workspace that never sends any costs
	// nothing.
	_, err := os.Stat(filepath.Join(dir, exemplarsMarker))
	u.exemplarsUsed.Store(err == nil)
	opts.EnableExemplarStorage = true
	opts.MaxExemplars = i.maxExemplars(id, u)
	u.maxExemplars.Store(opts.MaxExemplars)
	u.series.replaying.Store(true)
	u.db, u.openErr = i.openTSDB(dir, log.With(i.logger, "workspace", id), opts)
	u.series.replaying.Store(false)
	if u.openErr != nil {
		u.series.closed()
		u.failedAt = i.now()
		i.metrics.openFailures.WithLabelValues(id).Inc()
		level.Error(i.logger).Log("msg", "cannot open workspace tsdb; the workspace answers 500 on this ingester until it opens", "workspace", id, "err", u.openErr)
		u.openErr = apierror.New(apierror.Internal, apierror.IDTSDBUnavailable, "the TSDB of workspace %s cannot be opened on this ingester: %v", id, u.openErr)
	} else {
		if i.cfg.WALSync == WALSyncAlways {
			u.wal = newWALSyncer(filepath.Join(dir, "wal"), i.metrics)
		}
		// The workspace's limits hold from its first push.
		i.applySettings(context.Background(), id, u)
	}
	u.lastUsed.Store(lastUsed.UnixNano())
	close(u.opened)
}

// lastWrite is when the WAL in dir was last written, or now when unknown.
func lastWrite(dir string, now time.Time) time.Time {
	walDir := filepath.Join(dir, "wal")
	_, last, err := wlog.Segments(walDir)
	if err != nil || last < 0 {
		return now
	}
	fi, err := os.Stat(wlog.SegmentName(walDir, last))
	if err != nil || fi.ModTime().After(now) {
		return now
	}
	return fi.ModTime()
}

// forget removes u from the map if it is still the workspace's entry.
func (i *Ingester) forget(id string, u *userDB) {
	i.mu.Lock()
	if i.dbs[id] == u {
		delete(i.dbs, id)
	}
	i.metrics.openTSDBs.Set(float64(len(i.dbs)))
	i.mu.Unlock()
}

// acquire returns the workspace's TSDB held for use; callers must release it.
// With create false it returns nil for a workspace that has no data here.
// It waits for an opening TSDB at most until ctx ends.
func (i *Ingester) acquire(ctx context.Context, id string, create bool) (*userDB, error) {
	if err := tenant.ValidID(id); err != nil {
		return nil, apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	for {
		u, _, err := i.entry(id, false)
		if err != nil {
			return nil, err
		}
		if u == nil {
			if !create {
				// Reads of a workspace with nothing on disk register nothing.
				if _, err := os.Stat(filepath.Join(i.dir, id)); errors.Is(err, os.ErrNotExist) {
					return nil, nil
				}
			}
			var mustOpen bool
			if u, mustOpen, err = i.entry(id, true); err != nil {
				return nil, err
			}
			if mustOpen {
				// The open goes on even if this request gives up waiting.
				go i.open(id, u)
			}
		}
		if err := wait(ctx, u.opened); err != nil {
			return nil, err
		}
		if u.openErr != nil {
			if i.now().Sub(u.failedAt) < openRetryBackoff {
				return nil, u.openErr
			}
			i.forget(id, u) // try again
			continue
		}
		if u.tryHold(i.now()) {
			return u, nil
		}
		// Being closed as idle: wait for the close to finish (the TSDB's
		// lock file is released then), and open it anew.
		if err := wait(ctx, u.done); err != nil {
			return nil, err
		}
	}
}

// wait waits for ch to close, at most until ctx ends.
func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	default:
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return apierror.New(apierror.Unavailable, apierror.IDIngesterUnavailable, "gave up waiting for the workspace's TSDB to open: %v", ctx.Err())
	}
}

// openExisting opens every TSDB found on disk, replaying their WALs, at most
// -ingester.tsdb.wal-replay-concurrency at once. A TSDB that fails to open
// is logged and counted; the others open and the ingester starts.
func (i *Ingester) openExisting(ctx context.Context) error {
	entries, err := os.ReadDir(i.dir)
	if err != nil {
		return fmt.Errorf("list tsdb directory %s: %w", i.dir, err)
	}
	workers := i.cfg.WALReplayWorkers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ids := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				start := time.Now()
				u, mustOpen, err := i.entry(id, true)
				if err != nil || !mustOpen {
					continue
				}
				i.open(id, u)
				if u.openErr == nil {
					level.Info(i.logger).Log("msg", "opened workspace tsdb", "workspace", id, "duration", time.Since(start))
				}
			}
		}()
	}
	for _, e := range entries {
		if !e.IsDir() || tenant.ValidID(e.Name()) != nil {
			continue
		}
		select {
		case ids <- e.Name():
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break // stopped during start-up
		}
	}
	close(ids)
	wg.Wait()
	return ctx.Err()
}
