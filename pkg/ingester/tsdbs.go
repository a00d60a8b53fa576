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

// shutdownWait bounds how long shutdown waits for the in-flight requests of
// a workspace. A TSDB still in use then is left unclosed rather than closed
// under a reader: its WAL already holds every committed sample.
const shutdownWait = 5 * time.Minute

// userDB is one workspace's TSDB. Requests count themselves in inUse while
// they use db; a TSDB is closed only when no request uses it, and once
// closed it is never handed out again. A counter rather than a read lock
// lets one request acquire the same TSDB twice (a query runs several
// selects) without deadlocking against a waiting closer.
type userDB struct {
	opened  chan struct{} // closed once db (or openErr) is set
	done    chan struct{} // closed once db is closed and the entry forgotten
	db      *tsdb.DB
	openErr error
	refs    *refCache
	series  *seriesCounter

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

// tryClose closes the TSDB if no request uses it. It reports whether this
// call closed it.
func (u *userDB) tryClose() (bool, error) {
	u.mu.Lock()
	if u.closed || u.inUse > 0 {
		u.mu.Unlock()
		return false, nil
	}
	u.closed = true
	u.mu.Unlock()
	err := u.db.Close()
	u.series.closed()
	return true, err
}

// closeDB closes an unused TSDB and forgets it; requests that found it
// closing wait for done and then open it anew.
func (i *Ingester) closeDB(id string, u *userDB) (bool, error) {
	closed, err := u.tryClose()
	if closed {
		i.forget(id, u)
		close(u.done)
	}
	return closed, err
}

// closeWhenUnused waits (at most shutdownWait) for in-flight requests, then
// closes the TSDB.
func (i *Ingester) closeWhenUnused(id string, u *userDB) error {
	<-u.opened
	if u.openErr != nil {
		return nil
	}
	deadline := time.Now().Add(shutdownWait)
	for next := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if closed, err := i.closeDB(id, u); closed || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still in use after %s; left unclosed (its WAL holds every committed sample)", shutdownWait)
		}
		if time.Now().After(next) {
			level.Info(i.logger).Log("msg", "waiting for in-flight requests before closing tsdb", "workspace", id)
			next = time.Now().Add(10 * time.Second)
		}
	}
}

func (i *Ingester) tsdbOptions(series *seriesCounter) *tsdb.Options {
	o := tsdb.DefaultOptions()
	o.SeriesLifecycleCallback = series
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
	u = &userDB{
		opened: make(chan struct{}),
		done:   make(chan struct{}),
		refs:   newRefCache(),
		series: &seriesCounter{total: &i.series, max: i.cfg.InstanceLimits.MaxSeries},
	}
	i.dbs[id] = u
	i.metrics.openTSDBs.Set(float64(len(i.dbs)))
	return u, true, nil
}

// open opens the TSDB of a registered entry. Only the TSDB's own workspace
// waits for it (WAL replay can take a while); other workspaces go on.
func (i *Ingester) open(id string, u *userDB) {
	u.series.replaying.Store(true)
	u.db, u.openErr = tsdb.Open(filepath.Join(i.dir, id), logging.Slog(log.With(i.logger, "workspace", id)), nil, i.tsdbOptions(u.series), nil)
	u.series.replaying.Store(false)
	if u.openErr != nil {
		u.series.closed()
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
				i.open(id, u)
			}
		}
		<-u.opened
		if u.openErr != nil {
			return nil, u.openErr
		}
		if u.tryHold(i.now()) {
			return u, nil
		}
		// Being closed as idle: wait for the close to finish (the TSDB's
		// lock file is released then), and open it anew.
		<-u.done
	}
}

// openExisting opens every TSDB found on disk, replaying their WALs.
func (i *Ingester) openExisting(ctx context.Context) error {
	entries, err := os.ReadDir(i.dir)
	if err != nil {
		return fmt.Errorf("list tsdb directory %s: %w", i.dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() || tenant.ValidID(e.Name()) != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err // stopped during start-up
		}
		start := time.Now()
		u, mustOpen, err := i.entry(e.Name(), true)
		if err != nil {
			return err
		}
		if mustOpen {
			i.open(e.Name(), u)
		}
		<-u.opened
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
	for _, u := range i.openDBs() {
		u.refs.purge(cutoff)
	}
}

// openDBs returns the opened TSDBs, without holding the lock afterwards.
func (i *Ingester) openDBs() map[string]*userDB {
	i.mu.RLock()
	defer i.mu.RUnlock()
	out := make(map[string]*userDB, len(i.dbs))
	for id, u := range i.dbs {
		select {
		case <-u.opened:
			if u.openErr == nil {
				out[id] = u
			}
		default: // still opening
		}
	}
	return out
}

// closeIdle closes the TSDBs nobody has used for the idle timeout. Their WAL
// stays on disk and is replayed when the workspace is next used. Only the
// map lookups hold the ingester's lock, never a TSDB's close.
func (i *Ingester) closeIdle() {
	if i.cfg.IdleTimeout <= 0 {
		return
	}
	cutoff := i.now().Add(-i.cfg.IdleTimeout).UnixNano()
	for id, u := range i.openDBs() {
		if u.lastUsed.Load() > cutoff {
			continue
		}
		closed, err := i.closeDB(id, u)
		if !closed {
			continue // in use
		}
		if err != nil {
			level.Warn(i.logger).Log("msg", "closing idle tsdb failed", "workspace", id, "err", err)
			continue
		}
		level.Info(i.logger).Log("msg", "closed idle tsdb", "workspace", id)
	}
}
