package distributor

import (
	"context"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/ingester/client"
	"github.com/vigil-metrics/vigil/pkg/push"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Pusher is what the distributor needs of an ingester. The workspace is
// taken from the context.
type Pusher interface {
	// Push stores a batch of samples.
	Push(ctx context.Context, req *prompb.WriteRequest) error
}

// EncodedPusher is a Pusher that can send a request encoded once for
// several ingesters, with the series' bytes as they were decoded.
type EncodedPusher interface {
	PushEncoded(ctx context.Context, req *client.EncodedRequest) error
}

// Ingesters resolves a ring instance to a client.
type Ingesters func(inst ring.InstanceDesc) (Pusher, error)

// Replicas elects the replica of each high-availability cluster whose
// samples are stored (the HA tracker).
type Replicas interface {
	// CheckReplica returns nil when replica is, or has just become, the
	// elected replica of cluster; an error IsNotElected tells apart when
	// another replica leads.
	CheckReplica(ctx context.Context, workspace, cluster, replica string, now time.Time) error
	// CountDeduplicated counts the samples dropped of a replica that is
	// not elected.
	CountDeduplicated(workspace, cluster string, samples int)
}

// Members counts the healthy distributors, which share each workspace's
// ingestion rate.
type Members interface {
	HealthyDistributors() int
}

// Distributor runs the write path: each pushed request goes through named
// stages in order — HA deduplication, rate limit, validation, then sharding
// and replication to the ingesters. Its only background work drops the
// per-workspace metrics of workspaces that stopped pushing; the ring and the
// client pool it uses are services run by its owner.
type Distributor struct {
	services.Service

	cfg       Config
	ring      ring.DoBatchRing
	ingesters Ingesters
	limits    Limits
	replicas  Replicas // nil: no HA deduplication
	rates     *rateLimiter
	metrics   *metrics
	logger    log.Logger
	now       func() time.Time
	// spawn runs the replica pushes of a request (nil: a goroutine each).
	spawn func(func())

	encoded *client.EncodeBuffers // the buffers of the requests sent on

	// lastPush is when each workspace last pushed, to drop the metric
	// series of workspaces that stopped.
	activityMu sync.Mutex
	lastPush   map[string]time.Time
	keys       sync.Pool // *[]uint32: the shard keys of one request
	cuts       sync.Pool // *[]byte: series bytes rewritten by a stage
}

// New returns a distributor writing to the ingesters of r. replicas (nil:
// none) deduplicates high-availability pairs; members (nil: this one alone)
// counts the distributors sharing each workspace's ingestion rate.
func New(cfg Config, r ring.DoBatchRing, ingesters Ingesters, limits Limits, replicas Replicas, members Members, reg prometheus.Registerer, logger log.Logger) (*Distributor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Distributor{
		cfg:       cfg,
		ring:      r,
		ingesters: ingesters,
		limits:    limits,
		replicas:  replicas,
		rates:     newRateLimiter(limits, members),
		metrics:   newMetrics(reg),
		logger:    logger,
		now:       time.Now,
		encoded:   client.NewEncodeBuffers(),
		lastPush:  map[string]time.Time{},
	}
	d.Service = services.NewTimerService(time.Minute, nil, func(context.Context) error {
		d.dropInactive()
		return nil
	}, nil)
	d.keys.New = func() any { s := make([]uint32, 0, 1024); return &s }
	d.cuts.New = func() any { return new([]byte) }
	return d, nil
}

// maxPooledCut bounds the rewritten-series buffers kept for reuse.
const maxPooledCut = 4 << 20

// pushState is one request on its way through the stages.
type pushState struct {
	workspace string
	req       *push.Request
	now       time.Time
	// firstInvalid is the first refusal of part of the request, which the
	// sender is told once the rest is stored.
	firstInvalid error
	// discarded counts the samples and metadata the stages dropped, kept
	// what validation let through.
	discarded discards
	kept      struct{ samples, exemplars int }
	// drop is a label to drop from every series (HA deduplication's replica
	// label), dropAt where the last series had it.
	drop   string
	dropAt int
	// cut holds series bytes a stage rewrote (nil: none), given back to the
	// distributor's pool once the request is released; cutBuf is the part
	// written so far.
	cut    *[]byte
	cutBuf []byte
}

// scratch returns an empty buffer of at least size bytes for series bytes
// that live as long as the request.
func (s *pushState) scratch(d *Distributor, size int) []byte {
	if s.cut == nil {
		s.cut = d.cuts.Get().(*[]byte)
	}
	if cap(*s.cut) < size {
		*s.cut = make([]byte, 0, size)
	}
	return (*s.cut)[:0]
}

// Push runs req through the write path's stages and replicates what is left
// to the ingesters of the workspace in ctx. It takes req over (see
// push.Request): req.Release is called once no goroutine uses it, which
// can be after Push returns, when the slowest replica is still writing after
// quorum was reached.
//
// A request with invalid series or metadata stores the valid ones and
// returns a BadData error naming the first invalid one and the counts, as
// Prometheus's and Mimir's receivers do. A request over the workspace's
// ingestion rate is refused whole; one from a high-availability replica
// that is not elected is acknowledged and dropped.
func (d *Distributor) Push(ctx context.Context, req *push.Request) (err error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		req.Release()
		return apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	// The request and what the stages made of it are held until every
	// replica is done with it.
	s := &pushState{workspace: id, req: req, now: d.now()}
	handedOff := false
	cleanup := func() {
		req.Release()
		if s.cut != nil {
			if cap(*s.cut) <= maxPooledCut {
				*s.cut = (*s.cut)[:0]
				d.cuts.Put(s.cut)
			}
			s.cut = nil
		}
	}
	defer func() {
		if p := recover(); p != nil {
			d.panicked(ctx, p, "msg", "panic while handling a push")
			err = apierror.New(apierror.Internal, apierror.IDInternal, "internal error while handling the write request; retry it")
		}
		if !handedOff {
			cleanup()
		}
	}()
	d.metrics.receivedRequests.Inc()
	d.active(id)

	if done, err := d.dedupeHA(ctx, s); done || err != nil {
		return err
	}
	if err := d.limitRate(s); err != nil {
		return err
	}
	d.validate(s)
	d.account(s)
	if len(req.Timeseries) == 0 && len(req.Metadata) == 0 {
		return s.refusal()
	}
	if err := d.fanOut(ctx, s, cleanup, &handedOff); err != nil {
		return quorumError(err)
	}
	return s.refusal()
}

// account counts what a request brought and what its stages discarded.
func (d *Distributor) account(s *pushState) {
	d.metrics.receivedSamples.WithLabelValues(s.workspace).Add(float64(s.kept.samples))
	if n := s.kept.exemplars; n > 0 {
		d.metrics.receivedExemplars.WithLabelValues(s.workspace).Add(float64(n))
	}
	if n := len(s.req.Metadata); n > 0 {
		d.metrics.receivedMetadata.WithLabelValues(s.workspace).Add(float64(n))
	}
	for _, c := range s.discarded.samples {
		d.metrics.discardedSamples.WithLabelValues(s.workspace, c.reason).Add(float64(c.n))
	}
	for _, c := range s.discarded.exemplars {
		d.metrics.discardedExemplars.WithLabelValues(s.workspace, c.reason).Add(float64(c.n))
	}
	for _, c := range s.discarded.metadata {
		d.metrics.discardedMetadata.WithLabelValues(s.workspace, c.reason).Add(float64(c.n))
	}
}

// panicked counts and logs a recovered panic with the workspace of ctx and
// the stack.
func (d *Distributor) panicked(ctx context.Context, p any, keyvals ...any) {
	d.metrics.panics.Inc()
	ws, _ := tenant.ID(ctx)
	level.Error(d.logger).Log(append(keyvals, "workspace", ws, "panic", p, "stack", stack())...)
}

// inactiveWorkspaceTimeout is how long a workspace may go without pushing
// before its metric series are dropped.
const inactiveWorkspaceTimeout = 20 * time.Minute

func (d *Distributor) active(workspace string) {
	now := d.now()
	d.activityMu.Lock()
	d.lastPush[workspace] = now
	d.activityMu.Unlock()
}

// dropInactive drops the metric series and rate buckets of the workspaces
// that have not pushed for inactiveWorkspaceTimeout.
func (d *Distributor) dropInactive() {
	cutoff := d.now().Add(-inactiveWorkspaceTimeout)
	d.activityMu.Lock()
	var stale []string
	for ws, t := range d.lastPush {
		if t.Before(cutoff) {
			stale = append(stale, ws)
			delete(d.lastPush, ws)
		}
	}
	d.activityMu.Unlock()
	for _, ws := range stale {
		d.forget(ws)
	}
}

// ForgetWorkspace drops the metric series of a deleted workspace at once.
func (d *Distributor) ForgetWorkspace(workspace string) {
	d.activityMu.Lock()
	delete(d.lastPush, workspace)
	d.activityMu.Unlock()
	d.forget(workspace)
}

func (d *Distributor) forget(workspace string) {
	d.metrics.deleteWorkspace(workspace)
	d.rates.forget(workspace)
}
