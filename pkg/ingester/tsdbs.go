package ingester

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
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
	opened   chan struct{} // closed once db (or openErr) is set
	done     chan struct{} // closed once db is closed and the entry forgotten
	db       *tsdb.DB
	openErr  error
	failedAt time.Time // when opening failed
	refs     *refCache
	shipper  *shipper
	// appendMu is held shared by pushes while they append and commit, and
	// exclusively while the head is cut by a flush: a sample committed
	// during the cut could land in head memory the cut then truncates.
	appendMu sync.RWMutex
	series   *seriesCounter
	wal      *walSyncer // nil unless -ingester.tsdb.wal-sync=always
	// outOfOrderWindow is the TSDB's out-of-order window (ms).
	outOfOrderWindow atomic.Int64
	// maxExemplars is the size of the TSDB's exemplar storage.
	maxExemplars atomic.Int64
	// exemplarsUsed: the workspace has sent exemplars (here or before a
	// restart, a marker file says); until then its storage is not
	// allocated.
	exemplarsUsed atomic.Bool

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

// tryHoldIdle counts a request in without marking the TSDB used, unless it
// is closed.
func (u *userDB) tryHoldIdle() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	u.inUse++
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
		i.metrics.discardedSamples.DeletePartialMatch(prometheus.Labels{"workspace": id})
		i.metrics.discardedExemplar.DeleteLabelValues(id)
		i.metrics.seriesCapacity.DeleteLabelValues(id)
		i.metrics.seriesBaseline.DeleteLabelValues(id)
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

// closeIdle closes the TSDBs nobody has used for the idle timeout, once
// their head is cut into a block and uploaded: an idle workspace's recent
// samples reach object storage rather than waiting in a WAL. Only the map
// lookups hold the ingester's lock, never a TSDB's close.
func (i *Ingester) closeIdle(ctx context.Context) {
	if i.cfg.IdleTimeout <= 0 {
		return
	}
	cutoff := i.now().Add(-i.cfg.IdleTimeout).UnixNano()
	for id, u := range i.openDBs() {
		if u.lastUsed.Load() > cutoff {
			continue
		}
		if !u.tryHoldIdle() {
			continue
		}
		err := i.flushDB(ctx, id, u)
		u.release()
		if err != nil {
			level.Warn(i.logger).Log("msg", "idle tsdb kept open: its head could not be uploaded", "workspace", id, "err", err)
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
