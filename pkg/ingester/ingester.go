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
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/subservices"
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
	// openTSDB opens a workspace's TSDB; tests replace it.
	openTSDB func(dir string, logger log.Logger, opts *tsdb.Options) (*tsdb.DB, error)
	// bucket is the object storage blocks are uploaded to.
	bucket objstore.Bucket
	// labelSets gives the workspaces' label-set series limits; nil: none.
	labelSets LabelSetLimits
	// outOfOrder gives the workspaces' out-of-order windows; nil: none.
	outOfOrder OutOfOrderWindows
	// seriesLimits gives the workspaces' series limits; nil: none.
	seriesLimits SeriesLimits
	// metadataLimits gives the workspaces' metadata and exemplar limits;
	// nil: metadata unbounded, no exemplars.
	metadataLimits MetadataLimits
	// metadata is the metric metadata pushed here, per workspace.
	metadata *metadataStore
	// ingesterRing divides the global limits; nil: this ingester holds
	// the whole limit.
	ingesterRing IngesterRing
	share        atomic.Pointer[ringShare]
	// guard refuses new series near the memory limit; nil: none.
	guard *memGuard
	// limitsRefresh is how often the series limits are computed anew;
	// tests lengthen it to drive the refresh themselves.
	limitsRefresh time.Duration

	lifecycler *ring.BasicLifecycler
	subs       *subservices.Group

	builders sync.Pool // *labels.ScratchBuilder

	series         atomic.Int64 // in-memory series of every open TSDB
	inflightPushes atomic.Int64

	mu           sync.RWMutex
	dbs          map[string]*userDB
	deleting     map[string]struct{} // workspaces whose local data is being removed
	shuttingDown bool
}

// New returns an ingester that keeps its TSDBs under dataDir/ingester,
// uploads their blocks to bkt and joins the ingester ring kept in kvStore,
// advertising grpcPort.
func New(cfg Config, dataDir string, grpcPort int, bkt objstore.Bucket, kvStore ringmember.Store, reg prometheus.Registerer, logger log.Logger) (*Ingester, error) {
	base := filepath.Join(dataDir, "ingester")
	i := &Ingester{
		cfg:      cfg,
		dir:      filepath.Join(base, "tsdb"),
		logger:   logger,
		now:      time.Now,
		openTSDB: openTSDB,
		bucket:   bkt,
		dbs:      map[string]*userDB{},
		deleting: map[string]struct{}{},
		metadata: newMetadataStore(),

		guard:         newMemGuard(cfg.memoryLimit(), cfg.InstanceLimits.MemoryLimitNewSeriesRatio),
		limitsRefresh: seriesRefresh,
	}
	i.share.Store(&ringShare{rf: cfg.Ring.ReplicationFactor, zoneAware: cfg.Ring.ZoneAwarenessEnabled})
	i.metrics = newMetrics(reg,
		func() float64 { return float64(i.series.Load()) },
		func() float64 { return float64(i.inflightPushes.Load()) })
	registerGuardMetrics(reg, i.guard)
	reg.MustRegister(activeSeries{
		desc: prometheus.NewDesc("vigil_ingester_active_series", "Series in the in-memory head of each open workspace TSDB (samples of the last 2 to 3 hours).", []string{"workspace"}, nil),
		dbs:  i.openDBs,
	})
	i.builders.New = func() any { return &labels.ScratchBuilder{} }
	var err error
	i.lifecycler, err = ringmember.NewLifecycler(cfg.Ring, RingName, RingKey, kvStore,
		ringmember.Member{GRPCPort: grpcPort, TokensPath: filepath.Join(base, "tokens")}, reg, logger)
	if err != nil {
		return nil, err
	}
	i.subs = subservices.NewGroup(i.lifecycler, services.NewBasicService(i.limitsStart, i.limitsLoop, nil))
	i.Service = services.NewBasicService(subservices.UndoFailedStart(i.starting, i.stopping), i.running, i.stopping)
	return i, nil
}

// InstanceID is this ingester's ID in the ring.
func (i *Ingester) InstanceID() string { return i.lifecycler.GetInstanceID() }

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
	if err := i.openExisting(ctx); err != nil {
		return err
	}
	if err := i.subs.Start(ctx); err != nil {
		return fmt.Errorf("start ingester lifecycler: %w", err)
	}
	if err := i.lifecycler.ChangeState(ctx, ring.ACTIVE); err != nil {
		return fmt.Errorf("switch ingester to ACTIVE: %w", err)
	}
	level.Info(i.logger).Log("msg", "ingester is ACTIVE in the ring", "id", i.lifecycler.GetInstanceID(), "addr", i.lifecycler.GetInstanceAddr(), "zone", i.lifecycler.GetInstanceZone())
	return nil
}

func (i *Ingester) running(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	ship := time.NewTicker(i.cfg.ShipInterval)
	defer ship.Stop()
	deleted := time.NewTicker(i.cfg.DeletionCheck)
	defer deleted.Stop()
	labelSets := time.NewTicker(labelSetRefresh)
	defer labelSets.Stop()
	// Blocks cut before a crash or restart and not uploaded yet go first,
	// once the data of workspaces deleted meanwhile is gone.
	i.removeDeleted(ctx)
	i.shipAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-i.subs.Failed():
			return fmt.Errorf("ingester subservice failed: %w", err)
		case <-t.C:
			i.closeIdle(ctx)
			i.purgeRefs()
			i.purgeMetadata()
		case <-ship.C:
			i.shipAll(ctx)
		case <-deleted.C:
			i.removeDeleted(ctx)
		case <-labelSets.C:
			i.refreshSettings(ctx)
		}
	}
}

func (i *Ingester) stopping(_ error) error {
	i.mu.Lock()
	i.shuttingDown = true
	i.mu.Unlock()
	// Turn LEAVING in the ring first (and leave it, when configured to) so
	// that distributors stop sending here, then close every TSDB, which
	// syncs its WAL.
	errs := []error{i.subs.Stop()}
	i.mu.Lock()
	dbs := i.dbs
	i.dbs = map[string]*userDB{}
	i.mu.Unlock()
	for id, u := range dbs {
		// In-flight requests finish first (queries are bounded by the
		// querier timeout); new ones are refused since shuttingDown is set.
		if err := i.closeWhenUnused(id, u); err != nil {
			errs = append(errs, fmt.Errorf("close tsdb of workspace %s: %w", id, err))
		}
	}
	i.metrics.openTSDBs.Set(0)
	return errors.Join(errs...)
}
