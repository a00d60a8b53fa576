package storegateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
	"github.com/vigil-metrics/vigil/pkg/storegateway/client"
	"github.com/vigil-metrics/vigil/pkg/subservices"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Limits are the per-workspace limits a store-gateway applies to each
// request, whatever the querier counts: a request over them fails.
type Limits interface {
	MaxFetchedSeriesPerQuery(workspace string) int
	MaxFetchedChunkBytesPerQuery(workspace string) int64
}

// StoreGateway serves the blocks it owns in the store-gateway ring, and any
// other block a querier asks it for.
type StoreGateway struct {
	services.Service

	cfg    Config
	bkt    objstore.Bucket
	limits Limits
	blocks *blocks
	logger log.Logger
	now    func() time.Time
	stats  chunkStats

	ring   *ring.Ring
	member *ringmember.ActiveMember
	subs   *subservices.Group

	syncs *prometheus.CounterVec
}

// New returns a store-gateway keeping its local copies under
// dataDir/store-gateway, a member of the store-gateway ring r (which the
// caller runs) through member, which it runs.
func New(cfg Config, dataDir string, bkt objstore.Bucket, r *ring.Ring, member *ringmember.ActiveMember, lim Limits, reg prometheus.Registerer, logger log.Logger) (*StoreGateway, error) {
	logger = log.With(logger, "component", "store-gateway")
	g := &StoreGateway{cfg: cfg, bkt: bkt, limits: lim, logger: logger, now: time.Now, ring: r, member: member}
	g.blocks = &blocks{dir: filepath.Join(dataDir, "store-gateway"), bkt: bkt, logger: logger, now: g.now, byKey: map[string]*block{}}
	g.subs = subservices.NewGroup(g.member)
	f := promauto.With(reg)
	g.syncs = f.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_storegateway_syncs_total",
		Help: "Syncs of the owned blocks with the bucket indexes, by outcome.",
	}, []string{"outcome"})
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_storegateway_chunk_range_reads_total",
		Help: "Range reads of chunk files from object storage.",
	}, func() float64 { return float64(g.stats.gets.Load()) })
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_storegateway_chunk_read_bytes_total",
		Help: "Bytes of chunk files read from object storage.",
	}, func() float64 { return float64(g.stats.bytes.Load()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_storegateway_blocks",
		Help: "Blocks this store-gateway holds a local index of.",
	}, func() float64 { return float64(len(g.blocks.all())) })
	g.Service = services.NewBasicService(subservices.UndoFailedStart(g.starting, g.stopping), g.running, g.stopping)
	return g, nil
}

func (g *StoreGateway) starting(ctx context.Context) error {
	if err := os.MkdirAll(g.blocks.dir, 0o755); err != nil {
		return err
	}
	if err := g.subs.Start(ctx); err != nil {
		return err
	}
	// Fetch the indexes of the owned blocks before serving: queries do not
	// pay for them then. A failure is retried at the next sync.
	_ = g.Sync(ctx)
	return nil
}

func (g *StoreGateway) stopping(error) error {
	return errors.Join(g.subs.Stop(), g.blocks.closeAll())
}

func (g *StoreGateway) running(ctx context.Context) error {
	sync := time.NewTicker(g.cfg.SyncInterval)
	defer sync.Stop()
	idle := time.NewTicker(min(time.Minute, g.cfg.IndexIdleTimeout))
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-g.subs.Failed():
			return err
		case <-sync.C:
			_ = g.Sync(ctx)
		case <-idle.C:
			g.blocks.closeIdle(g.now().Add(-g.cfg.IndexIdleTimeout))
		}
	}
}

// InstanceID is this store-gateway's ID in the ring.
func (g *StoreGateway) InstanceID() string { return g.member.InstanceID() }

var syncOp = ring.NewOp([]ring.InstanceState{ring.JOINING, ring.ACTIVE, ring.LEAVING}, nil)

// owns reports whether this store-gateway is one of the block's replicas.
func (g *StoreGateway) owns(workspace string, id ulid.ULID) (bool, error) {
	rs, err := g.ring.Get(client.BlockKey(workspace, id), syncOp, nil, nil, nil)
	if err != nil {
		return false, err
	}
	for _, inst := range rs.Instances {
		if inst.Id == g.member.InstanceID() {
			return true, nil
		}
	}
	return false, nil
}

// Sync downloads the index of every block this store-gateway owns and
// removes the local copies of the blocks it does not (anymore). Blocks of a
// workspace that has no bucket index yet (queriers find them by listing)
// are fetched when a query asks for them, and kept until an index tells
// whether they are wanted.
func (g *StoreGateway) Sync(ctx context.Context) error {
	wanted := map[string]bool{}
	unindexed := map[string]bool{}
	var errs []error
	err := g.bkt.Iter(ctx, bucket.WorkspacesPrefix, func(name string) error {
		ws := strings.TrimSuffix(strings.TrimPrefix(name, bucket.WorkspacesPrefix), "/")
		if !strings.HasSuffix(name, "/") || tenant.ValidID(ws) != nil {
			return nil
		}
		idx, err := vtsdb.ReadIndex(ctx, bucket.ForWorkspace(g.bkt, ws))
		if errors.Is(err, vtsdb.ErrIndexNotFound) {
			unindexed[ws] = true
			return nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("workspace %s: %w", ws, err))
			return nil
		}
		for _, b := range idx.Blocks {
			if _, marked := idx.DeletionMark(b.ID); marked {
				continue
			}
			owned, err := g.owns(ws, b.ID)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !owned {
				continue
			}
			wanted[key(ws, b.ID)] = true
			blk := g.blocks.get(ws, b.ID)
			blk.mu.Lock()
			if !blk.dropped {
				err = g.blocks.download(ctx, blk)
			}
			blk.mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		// Only a complete listing tells which local blocks are unwanted.
		for _, b := range append(g.blocks.all(), g.blocks.onDisk()...) {
			if !wanted[key(b.workspace, b.id)] && !unindexed[b.workspace] {
				g.blocks.drop(b)
			}
		}
	}
	err = errors.Join(errs...)
	if err != nil {
		g.syncs.WithLabelValues("failure").Inc()
		level.Warn(g.logger).Log("msg", "block sync failed; retrying at the next sync", "err", err)
	} else {
		g.syncs.WithLabelValues("success").Inc()
	}
	return err
}
