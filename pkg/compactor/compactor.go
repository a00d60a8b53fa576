package compactor

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	"github.com/vigil-metrics/vigil/pkg/subservices"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Limits are the per-workspace limits the compactor applies.
type Limits interface {
	// RetentionPeriod is how long samples are kept; 0 keeps them forever.
	RetentionPeriod(workspace string) time.Duration
}

// Workspaces tells whether a workspace still exists: data in object storage
// of a workspace that does not is deleted, even if its deletion mark was
// never written.
type Workspaces interface {
	Exists(ctx context.Context, id string) (bool, error)
}

// Compactor compacts and cleans the workspaces it owns in the compactor ring.
type Compactor struct {
	services.Service

	cfg        Config
	bkt        objstore.Bucket
	limits     Limits
	workspaces Workspaces
	dir        string
	logger     log.Logger
	now        func() time.Time

	ring   *ring.Ring
	member *ringmember.ActiveMember
	subs   *subservices.Group
	// runMu serialises passes: a pass owns the working directory.
	runMu sync.Mutex

	runs          *prometheus.CounterVec
	compactions   prometheus.Counter
	deletedBlocks prometheus.Counter
	markedBlocks  *prometheus.CounterVec
	lastSuccess   prometheus.Gauge
}

// New returns a compactor working under dataDir/compactor on bkt, a member
// of the compactor ring r through member; it runs both (it is the ring's
// only reader). workspaces may be nil.
func New(cfg Config, dataDir string, bkt objstore.Bucket, r *ring.Ring, member *ringmember.ActiveMember, lim Limits, workspaces Workspaces, reg prometheus.Registerer, logger log.Logger) (*Compactor, error) {
	c := &Compactor{
		cfg: cfg, bkt: bkt, limits: lim, workspaces: workspaces, ring: r, member: member,
		dir: filepath.Join(dataDir, "compactor"), logger: log.With(logger, "component", "compactor"), now: time.Now,
	}
	c.subs = subservices.NewGroup(c.ring, c.member)
	f := promauto.With(reg)
	c.runs = f.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_compactor_runs_total",
		Help: "Compactor passes over the owned workspaces, by kind (cleanup, compaction) and outcome.",
	}, []string{"kind", "outcome"})
	c.compactions = f.NewCounter(prometheus.CounterOpts{
		Name: "vigil_compactor_compactions_total",
		Help: "Groups of blocks compacted into one.",
	})
	c.deletedBlocks = f.NewCounter(prometheus.CounterOpts{
		Name: "vigil_compactor_blocks_deleted_total",
		Help: "Blocks deleted from object storage (marked ones past the deletion delay, partial uploads, deleted workspaces' blocks).",
	})
	c.markedBlocks = f.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_compactor_blocks_marked_for_deletion_total",
		Help: "Blocks marked for deletion, by reason (compacted, retention).",
	}, []string{"reason"})
	c.lastSuccess = f.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_compactor_last_successful_run_timestamp_seconds",
		Help: "When the last compaction pass over every owned workspace succeeded.",
	})
	c.Service = services.NewBasicService(subservices.UndoFailedStart(c.starting, c.stopping), c.running, c.stopping)
	return c, nil
}

// Ring is the compactor ring, for its status page.
func (c *Compactor) Ring() *ring.Ring { return c.ring }

func (c *Compactor) starting(ctx context.Context) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	return c.subs.Start(ctx)
}

func (c *Compactor) stopping(error) error {
	return c.subs.Stop()
}

func (c *Compactor) running(ctx context.Context) error {
	cleanup := time.NewTicker(c.cfg.CleanupInterval)
	defer cleanup.Stop()
	compaction := time.NewTicker(c.cfg.CompactionInterval)
	defer compaction.Stop()
	c.RunCompaction(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-c.subs.Failed():
			return err
		case <-cleanup.C:
			c.RunCleanup(ctx)
		case <-compaction.C:
			c.RunCompaction(ctx)
		}
	}
}

// RunCleanup rewrites the bucket index of every owned workspace, applying
// retention and deleting what is due.
func (c *Compactor) RunCleanup(ctx context.Context) error {
	return c.forOwned(ctx, "cleanup", func(ctx context.Context, id string) error {
		_, err := c.cleanWorkspace(ctx, id)
		return err
	})
}

// RunCompaction compacts every owned workspace, then cleans it.
func (c *Compactor) RunCompaction(ctx context.Context) error {
	err := c.forOwned(ctx, "compaction", func(ctx context.Context, id string) error {
		live, err := c.cleanWorkspace(ctx, id)
		if err != nil || !live {
			return err
		}
		if err := c.compactWorkspace(ctx, id); err != nil {
			return err
		}
		_, err = c.cleanWorkspace(ctx, id)
		return err
	})
	if err == nil {
		c.lastSuccess.SetToCurrentTime()
	}
	return err
}

// forOwned runs f on every workspace with objects in the bucket that this
// compactor owns. A failing workspace does not stop the others.
func (c *Compactor) forOwned(ctx context.Context, kind string, f func(context.Context, string) error) error {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	ids, err := c.listWorkspaces(ctx)
	if err != nil {
		c.runs.WithLabelValues(kind, "failure").Inc()
		level.Warn(c.logger).Log("msg", "cannot list workspaces", "err", err)
		return err
	}
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		owned, err := c.owns(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !owned {
			continue
		}
		if err := f(ctx, id); err != nil {
			level.Warn(c.logger).Log("msg", kind+" of workspace failed", "workspace", id, "err", err)
			errs = append(errs, fmt.Errorf("workspace %s: %w", id, err))
		}
	}
	outcome := "success"
	if len(errs) > 0 {
		outcome = "failure"
	}
	c.runs.WithLabelValues(kind, outcome).Inc()
	return errors.Join(errs...)
}

// listWorkspaces lists the workspaces with objects in the bucket.
func (c *Compactor) listWorkspaces(ctx context.Context) ([]string, error) {
	var ids []string
	err := c.bkt.Iter(ctx, bucket.WorkspacesPrefix, func(name string) error {
		id := strings.TrimSuffix(strings.TrimPrefix(name, bucket.WorkspacesPrefix), "/")
		if strings.HasSuffix(name, "/") && tenant.ValidID(id) == nil {
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

var ownerOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)

// owns reports whether this compactor owns the workspace in the ring.
func (c *Compactor) owns(id string) (bool, error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	rs, err := c.ring.Get(h.Sum32(), ownerOp, nil, nil, nil)
	if err != nil {
		return false, err
	}
	for _, inst := range rs.Instances {
		if inst.Id == c.member.InstanceID() {
			return true, nil
		}
	}
	return false, nil
}

// workspaceBucket is the view of the bucket holding one workspace's objects.
func (c *Compactor) workspaceBucket(id string) objstore.Bucket { return bucket.ForWorkspace(c.bkt, id) }
