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
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/logging"
)

// errStopping is returned to requests that arrive while the ingester shuts down.
var errStopping = apierror.New(apierror.Unavailable, apierror.IDIngesterUnavailable, "ingester is stopping")

// Ingester owns the TSDBs of the workspaces on this instance.
type Ingester struct {
	services.Service

	cfg     Config
	dir     string // root of the per-workspace TSDB directories
	logger  log.Logger
	metrics *metrics
	now     func() time.Time

	lifecycler *ring.BasicLifecycler
	subs       *services.Manager
	watcher    *services.FailureWatcher

	mu           sync.RWMutex
	dbs          map[string]*userDB
	shuttingDown bool
}

// userDB is one workspace's TSDB. Requests hold mu for reading while they
// use db; closing takes it for writing, so an idle TSDB is never closed under
// a running request.
type userDB struct {
	db       *tsdb.DB
	refs     *refCache
	mu       sync.RWMutex
	closed   bool
	lastUsed atomic.Int64 // unix nanoseconds
}

func (u *userDB) release() { u.mu.RUnlock() }

// New returns an ingester that keeps its TSDBs under dataDir/ingester and
// advertises grpcPort in the ring kept in kvClient.
func New(cfg Config, dataDir string, grpcPort int, kvClient kv.Client, reg prometheus.Registerer, logger log.Logger) (*Ingester, error) {
	if err := cfg.Ring.ValidateInstance(); err != nil {
		return nil, err
	}
	base := filepath.Join(dataDir, "ingester")
	i := &Ingester{
		cfg:     cfg,
		dir:     filepath.Join(base, "tsdb"),
		logger:  logger,
		metrics: newMetrics(reg),
		now:     time.Now,
		dbs:     map[string]*userDB{},
	}
	lcCfg, err := cfg.Ring.lifecyclerConfig(grpcPort, logger)
	if err != nil {
		return nil, err
	}
	delegate := newLifecyclerDelegate(cfg.Ring.NumTokens, filepath.Join(base, "tokens"), cfg.Ring.HeartbeatTimeout, logger)
	i.lifecycler, err = ring.NewBasicLifecycler(lcCfg, RingName, RingKey, kvClient, delegate, logger, reg)
	if err != nil {
		return nil, fmt.Errorf("create ingester lifecycler: %w", err)
	}
	i.Service = services.NewBasicService(i.starting, i.running, i.stopping)
	return i, nil
}

// InstanceID is this ingester's ID in the ring.
func (i *Ingester) InstanceID() string { return i.lifecycler.GetInstanceID() }

// RingHandler serves the lifecycler's view of the ring.
func (i *Ingester) RingHandler() *ring.BasicLifecycler { return i.lifecycler }

// CheckReady returns nil once the ingester is ACTIVE in the ring.
func (i *Ingester) CheckReady(context.Context) error {
	if s := i.lifecycler.GetState(); s != ring.ACTIVE {
		return fmt.Errorf("ingester is %s in the ring, not ACTIVE", s)
	}
	return nil
}

func (i *Ingester) starting(ctx context.Context) error {
	if err := os.MkdirAll(i.dir, 0o755); err != nil {
		return fmt.Errorf("create tsdb directory %s: %w", i.dir, err)
	}
	// Replay every WAL before joining the ring, so that this instance never
	// answers a query without the data it acknowledged before a restart.
	if err := i.openExisting(); err != nil {
		return err
	}
	var err error
	if i.subs, err = services.NewManager(i.lifecycler); err != nil {
		return err
	}
	i.watcher = services.NewFailureWatcher()
	i.watcher.WatchManager(i.subs)
	if err := services.StartManagerAndAwaitHealthy(ctx, i.subs); err != nil {
		return fmt.Errorf("start ingester lifecycler: %w", err)
	}
	if err := i.lifecycler.ChangeState(ctx, ring.ACTIVE); err != nil {
		return fmt.Errorf("switch ingester to ACTIVE: %w", err)
	}
	level.Info(i.logger).Log("msg", "ingester is ACTIVE in the ring", "id", i.lifecycler.GetInstanceID(), "addr", i.lifecycler.GetInstanceAddr(), "zone", i.lifecycler.GetInstanceZone())
	return nil
}

func (i *Ingester) openExisting() error {
	entries, err := os.ReadDir(i.dir)
	if err != nil {
		return fmt.Errorf("list tsdb directory %s: %w", i.dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		start := time.Now()
		if _, err := i.openDB(e.Name()); err != nil {
			return err
		}
		level.Info(i.logger).Log("msg", "opened workspace tsdb", "workspace", e.Name(), "duration", time.Since(start))
	}
	return nil
}

func (i *Ingester) running(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-i.watcher.Chan():
			return fmt.Errorf("ingester subservice failed: %w", err)
		case <-t.C:
			i.closeIdle()
			i.purgeRefs()
		}
	}
}

func (i *Ingester) stopping(_ error) error {
	i.mu.Lock()
	i.shuttingDown = true
	i.mu.Unlock()
	// Leave the ring first (LEAVING, then unregistered) so that distributors
	// stop sending here, then close every TSDB, which syncs its WAL.
	var errs []error
	if i.subs != nil {
		errs = append(errs, services.StopManagerAndAwaitStopped(context.Background(), i.subs))
	}
	i.mu.Lock()
	dbs := i.dbs
	i.dbs = map[string]*userDB{}
	i.mu.Unlock()
	for id, u := range dbs {
		u.mu.Lock()
		if !u.closed {
			u.closed = true
			if err := u.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close tsdb of workspace %s: %w", id, err))
			}
		}
		u.mu.Unlock()
	}
	i.metrics.openTSDBs.Set(0)
	return errors.Join(errs...)
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

// openDB opens (creating if needed) the TSDB of a workspace and registers it.
func (i *Ingester) openDB(id string) (*userDB, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.shuttingDown {
		return nil, errStopping
	}
	if u, ok := i.dbs[id]; ok {
		return u, nil
	}
	db, err := tsdb.Open(filepath.Join(i.dir, id), logging.Slog(log.With(i.logger, "workspace", id)), nil, i.tsdbOptions(), nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb of workspace %s: %w", id, err)
	}
	u := &userDB{db: db, refs: newRefCache()}
	u.lastUsed.Store(i.now().UnixNano())
	i.dbs[id] = u
	i.metrics.openTSDBs.Set(float64(len(i.dbs)))
	return u, nil
}

// acquire returns the workspace's TSDB held for use; callers must release it.
// With create false it returns nil for a workspace that has no data here.
func (i *Ingester) acquire(id string, create bool) (*userDB, error) {
	for {
		i.mu.RLock()
		u, stopping := i.dbs[id], i.shuttingDown
		i.mu.RUnlock()
		if stopping {
			return nil, errStopping
		}
		if u == nil {
			if !create {
				if _, err := os.Stat(filepath.Join(i.dir, id)); errors.Is(err, os.ErrNotExist) {
					return nil, nil
				}
			}
			var err error
			if u, err = i.openDB(id); err != nil {
				return nil, err
			}
		}
		u.mu.RLock()
		if u.closed {
			// Closed as idle between the lookup and the lock: open it again.
			u.mu.RUnlock()
			continue
		}
		u.lastUsed.Store(i.now().UnixNano())
		return u, nil
	}
}

// purgeRefs drops series references unused for an hour: such series are no
// longer written, and the head drops them at its next compaction.
func (i *Ingester) purgeRefs() {
	cutoff := i.now().Add(-time.Hour).Unix()
	i.mu.RLock()
	defer i.mu.RUnlock()
	for _, u := range i.dbs {
		u.refs.purge(cutoff)
	}
}

// closeIdle closes the TSDBs nobody has used for the idle timeout. Their WAL
// stays on disk and is replayed when the workspace is next used.
func (i *Ingester) closeIdle() {
	if i.cfg.IdleTimeout <= 0 {
		return
	}
	cutoff := i.now().Add(-i.cfg.IdleTimeout).UnixNano()
	i.mu.Lock()
	defer i.mu.Unlock()
	for id, u := range i.dbs {
		if u.lastUsed.Load() > cutoff || !u.mu.TryLock() {
			continue
		}
		u.closed = true
		if err := u.db.Close(); err != nil {
			level.Warn(i.logger).Log("msg", "closing idle tsdb failed", "workspace", id, "err", err)
		}
		u.mu.Unlock()
		delete(i.dbs, id)
		level.Info(i.logger).Log("msg", "closed idle tsdb", "workspace", id)
	}
	i.metrics.openTSDBs.Set(float64(len(i.dbs)))
}
