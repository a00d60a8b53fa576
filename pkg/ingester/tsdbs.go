package ingester

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/logging"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// shutdownWait bounds how long shutdown waits for in-flight requests of a
// workspace before closing its TSDB anyway.
const shutdownWait = 30 * time.Second

// userDB is one workspace's TSDB. Requests count themselves in inUse while
// they use db; a TSDB is closed only when no request uses it, and once
// closed it is never handed out again. A counter rather than a read lock
// lets one request acquire the same TSDB twice (a query runs several
// selects) without deadlocking against a waiting closer.
type userDB struct {
	opened  chan struct{} // closed once db (or openErr) is set
	db      *tsdb.DB
	openErr error
	refs    *refCache

	mu       sync.Mutex
	inUse    int
	closed   bool
	lastUsed atomic.Int64 // unix nanoseconds
}

func (u *userDB) release() {
	u.mu.Lock()
	u.inUse--
	u.mu.Unlock()
}

// tryHold counts a request in, unless the TSDB is closed.
func (u *userDB) tryHold(now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	u.inUse++
	u.lastUsed.Store(now.UnixNano())
	return true
}

// tryClose closes the TSDB if no request uses it.
func (u *userDB) tryClose() (bool, error) {
	u.mu.Lock()
	if u.closed || u.inUse > 0 {
		u.mu.Unlock()
		return u.closed, nil
	}
	u.closed = true
	u.mu.Unlock()
	return true, u.db.Close()
}

// closeWhenUnused waits (at most wait) for in-flight requests, then closes.
func (u *userDB) closeWhenUnused(ctx context.Context, wait time.Duration) error {
	<-u.opened
	if u.openErr != nil {
		return nil
	}
	deadline := time.Now().Add(wait)
	for {
		if done, err := u.tryClose(); done || err != nil {
			return err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			u.mu.Lock()
			u.closed = true
			u.mu.Unlock()
			return u.db.Close()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (i *Ingester) tsdbOptions() *tsdb.Options {
	o := tsdb.DefaultOptions()
	o.MinBlockDuration = i.cfg.BlockRange.Milliseconds()
	o.MaxBlockDuration = i.cfg.BlockRange.Milliseconds()
	o.RetentionDuration = i.cfg.Retention.Milliseconds()
	if i.cfg.WALCompression {
		o.WALCompression = compression.Snappy
	}
	return o
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
	u = &userDB{opened: make(chan struct{}), refs: newRefCache()}
	i.dbs[id] = u
	i.metrics.openTSDBs.Set(float64(len(i.dbs)))
	return u, true, nil
}

// open opens the TSDB of a registered entry. Only the TSDB's own workspace
// waits for it (WAL replay can take a while); other workspaces go on.
func (i *Ingester) open(id string, u *userDB) {
	u.db, u.openErr = tsdb.Open(filepath.Join(i.dir, id), logging.Slog(log.With(i.logger, "workspace", id)), nil, i.tsdbOptions(), nil)
	if u.openErr != nil {
		u.openErr = fmt.Errorf("open tsdb of workspace %s: %w", id, u.openErr)
		i.forget(id, u)
	}
	u.lastUsed.Store(i.now().UnixNano())
	close(u.opened)
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
func (i *Ingester) acquire(id string, create bool) (*userDB, error) {
	if err := tenant.ValidID(id); err != nil {
		return nil, apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	for {
		u, mustOpen, err := i.entry(id, true)
		if err != nil {
			return nil, err
		}
		if mustOpen {
			if !create {
				if _, err := os.Stat(filepath.Join(i.dir, id)); errors.Is(err, os.ErrNotExist) {
					// Nothing on disk: do not create a TSDB for a read.
					u.openErr = errNoData
					i.forget(id, u)
					close(u.opened)
					return nil, nil
				}
			}
			i.open(id, u)
		}
		<-u.opened
		if errors.Is(u.openErr, errNoData) {
			if !create {
				return nil, nil
			}
			continue
		}
		if u.openErr != nil {
			return nil, u.openErr
		}
		if u.tryHold(i.now()) {
			return u, nil
		}
		// Closed as idle between the lookup and now: open it again.
	}
}

var errNoData = errors.New("workspace has no data on this ingester")

// openExisting opens every TSDB found on disk, replaying their WALs.
func (i *Ingester) openExisting() error {
	entries, err := os.ReadDir(i.dir)
	if err != nil {
		return fmt.Errorf("list tsdb directory %s: %w", i.dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() || tenant.ValidID(e.Name()) != nil {
			continue
		}
		start := time.Now()
		u, mustOpen, err := i.entry(e.Name(), true)
		if err != nil {
			return err
		}
		if mustOpen {
			i.open(e.Name(), u)
		}
		if u.openErr != nil {
			return u.openErr
		}
		level.Info(i.logger).Log("msg", "opened workspace tsdb", "workspace", e.Name(), "duration", time.Since(start))
	}
	return nil
}

// purgeRefs drops series references unused for an hour: such series are no
// longer written, and the head drops them at its next compaction.
func (i *Ingester) purgeRefs() {
	cutoff := i.now().Add(-time.Hour).Unix()
	i.mu.RLock()
	defer i.mu.RUnlock()
	for _, u := range i.dbs {
		select {
		case <-u.opened:
			u.refs.purge(cutoff)
		default:
		}
	}
}

// closeIdle closes the TSDBs nobody has used for the idle timeout. Their WAL
// stays on disk and is replayed when the workspace is next used. Only the
// map lookups hold the ingester's lock, never a TSDB's close.
func (i *Ingester) closeIdle() {
	if i.cfg.IdleTimeout <= 0 {
		return
	}
	cutoff := i.now().Add(-i.cfg.IdleTimeout).UnixNano()
	i.mu.RLock()
	idle := map[string]*userDB{}
	for id, u := range i.dbs {
		select {
		case <-u.opened:
			if u.openErr == nil && u.lastUsed.Load() <= cutoff {
				idle[id] = u
			}
		default: // still opening
		}
	}
	i.mu.RUnlock()
	for id, u := range idle {
		closed, err := u.tryClose()
		if !closed {
			continue // in use
		}
		i.forget(id, u)
		if err != nil {
			level.Warn(i.logger).Log("msg", "closing idle tsdb failed", "workspace", id, "err", err)
			continue
		}
		level.Info(i.logger).Log("msg", "closed idle tsdb", "workspace", id)
	}
}
