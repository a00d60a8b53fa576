package distributor

import (
	"context"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/inflight"
	"github.com/vigil-metrics/vigil/pkg/ingester/client"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
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

// Distributor validates, shards and replicates pushed series. Its only
// background work drops the per-workspace metrics of workspaces that stopped
// pushing; the ring and the client pool it uses are services run by its
// owner.
type Distributor struct {
	services.Service

	cfg       Config
	ring      ring.DoBatchRing
	ingesters Ingesters
	limits    Limits
	metrics   *metrics
	logger    log.Logger
	now       func() time.Time

	inflight *inflightPushes
	buffers  *remotewrite.FreeList[*pushBuffers] // the buffers of remote-write requests
	encoded  *client.EncodeBuffers               // the buffers of the requests sent on

	// lastPush is when each workspace last pushed, to drop the metric
	// series of workspaces that stopped.
	activityMu sync.Mutex
	lastPush   map[string]time.Time
	keys       sync.Pool // *[]uint32: the shard keys of one request
}

// New returns a distributor writing to the ingesters of r. The memory of
// the requests it decodes comes out of budget, the process's budget of
// request memory (which -distributor.instance-limits.max-inflight-push-requests-bytes
// sizes).
func New(cfg Config, r ring.DoBatchRing, ingesters Ingesters, limits Limits, budget *inflight.Budget, reg prometheus.Registerer, logger log.Logger) (*Distributor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	in := &inflightPushes{limits: cfg.InstanceLimits, budget: budget}
	d := &Distributor{
		cfg:       cfg,
		ring:      r,
		ingesters: ingesters,
		limits:    limits,
		metrics:   newMetrics(reg, in),
		logger:    logger,
		now:       time.Now,
		inflight:  in,
		encoded:   client.NewEncodeBuffers(),
		lastPush:  map[string]time.Time{},
	}
	d.Service = services.NewTimerService(time.Minute, nil, func(context.Context) error {
		d.dropInactive()
		return nil
	}, nil)
	d.buffers = remotewrite.NewFreeList(pooledRequests, func() *pushBuffers { return &pushBuffers{pool: d.buffers} })
	d.keys.New = func() any { s := make([]uint32, 0, 1024); return &s }
	return d, nil
}

// Push validates req, drops the invalid series and replicates the rest to
// the ingesters of the workspace in ctx. cleanup (which may be nil) is called
// once no goroutine uses req any more, which can be after Push returns: the
// slowest replica may still be writing after quorum was reached.
//
// A request with invalid series stores its valid ones and returns a BadData
// error naming the first invalid one, as Prometheus's and Mimir's receivers do.
func (d *Distributor) Push(ctx context.Context, req *prompb.WriteRequest, cleanup func()) error {
	return d.push(ctx, req, nil, cleanup)
}

// push is Push for a request whose series' encoded bytes are known: raw[i]
// encodes req.Timeseries[i] (raw may be nil). A series sent on unchanged is
// sent as those bytes, with no encoding.
func (d *Distributor) push(ctx context.Context, req *prompb.WriteRequest, raw [][]byte, cleanup func()) error {
	if cleanup == nil {
		cleanup = func() {}
	}
	id, err := tenant.ID(ctx)
	if err != nil {
		cleanup()
		return apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	d.metrics.receivedRequests.Inc()
	d.active(id)

	var (
		firstInvalid error
		discarded    map[string]int // by reason
	)
	discard := func(reason string, n int) {
		if discarded == nil {
			discarded = map[string]int{}
		}
		discarded[reason] += n
	}
	n, samples := 0, 0
	lim := resolveLimits(d.limits, id, d.now())
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		v, changed := validateSeries(lim, ts)
		if v.reason != "" {
			discard(v.reason, len(ts.Samples)+len(ts.Histograms))
			if firstInvalid == nil {
				firstInvalid = v.err(lim, ts.Labels)
			}
			continue
		}
		exemplars := len(ts.Exemplars)
		if dropped, first := dropFutureSamples(lim, ts); dropped > 0 {
			discard(reasonTooFarInFuture, dropped)
			if firstInvalid == nil {
				firstInvalid = futureErr(lim, ts.Labels, first)
			}
			if len(ts.Samples)+len(ts.Histograms)+len(ts.Exemplars) == 0 {
				continue
			}
			changed = true
		}
		if len(ts.Exemplars) != exemplars {
			changed = true // future exemplars are dropped without a word
		}
		samples += len(ts.Samples) + len(ts.Histograms)
		// Swap rather than copy: every element keeps slices of its own, which
		// the pooled decoder reuses for the next request.
		req.Timeseries[n], req.Timeseries[i] = req.Timeseries[i], req.Timeseries[n]
		if raw != nil {
			raw[n] = raw[i]
			if changed {
				raw[n] = nil // its bytes say something else now
			}
		}
		n++
	}
	for reason, count := range discarded {
		d.metrics.discardedSamples.WithLabelValues(id, reason).Add(float64(count))
	}
	valid := req.Timeseries[:n]
	req.Timeseries = valid
	d.metrics.receivedSamples.WithLabelValues(id).Add(float64(samples))
	if len(valid) == 0 {
		cleanup()
		return firstInvalid
	}

	// Ingester pushes outlive the HTTP request when a slow replica is still
	// writing after quorum: give them their own deadline.
	pushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.RemoteTimeout)
	if d.ring.ReplicationFactor() == 1 && d.ring.InstancesCount() == 1 {
		// One ingester holds everything (monolithic mode): no sharding.
		defer cleanup()
		defer cancel()
		rs, err := d.ring.Get(0, ring.WriteNoExtend, nil, nil, nil)
		if err != nil {
			return quorumError(err)
		}
		if len(rs.Instances) != 1 {
			return apierror.New(apierror.Unavailable, apierror.IDIngesterUnavailable, "no healthy ingester in the ring")
		}
		c, err := d.ingesters(rs.Instances[0])
		if err != nil {
			return quorumError(err)
		}
		if err := c.Push(pushCtx, req); err != nil {
			return quorumError(err)
		}
		return firstInvalid
	}

	if raw != nil {
		raw = raw[:n]
	}
	opts := ring.DoBatchOptions{IsClientError: apierror.IsClientError}
	if d.everyInstanceHoldsEverySeries() {
		// Every ingester holds a replica of every series (three ingesters,
		// replication factor 3): each key has the same replication set, so
		// one key stands for all the series, which go out encoded once.
		enc := client.NewEncodedRequest(req, raw, nil, d.encoded)
		opts.Cleanup = func() {
			cancel()
			enc.Release()
			cleanup()
		}
		err = ring.DoBatchWithOptions(pushCtx, ring.WriteNoExtend, d.ring, []uint32{0}, func(inst ring.InstanceDesc, _ []int) error {
			return d.pushTo(pushCtx, inst, enc)
		}, opts)
	} else {
		keysPtr := d.keys.Get().(*[]uint32)
		keys := (*keysPtr)[:0]
		for i := range valid {
			keys = append(keys, shardToken(id, valid[i].Labels))
		}
		opts.Cleanup = func() {
			cancel()
			*keysPtr = keys[:0]
			d.keys.Put(keysPtr)
			cleanup()
		}
		err = ring.DoBatchWithOptions(pushCtx, ring.WriteNoExtend, d.ring, keys, func(inst ring.InstanceDesc, idxs []int) error {
			enc := client.NewEncodedRequest(req, raw, idxs, d.encoded)
			defer enc.Release() // sent once: the call has encoded it
			return d.pushTo(pushCtx, inst, enc)
		}, opts)
	}
	if err != nil {
		return quorumError(err)
	}
	return firstInvalid
}

// everyInstanceHoldsEverySeries tells whether every key's replication set
// is every instance of the ring: no more instances than replicas, and the
// set of one key holds them all (with zone awareness, one instance per
// zone; two in one zone would split its keys). While an instance is
// unhealthy the sets are smaller and the series are sharded one by one.
func (d *Distributor) everyInstanceHoldsEverySeries() bool {
	n := d.ring.InstancesCount()
	if n > d.ring.ReplicationFactor() {
		return false
	}
	var (
		descs        [ring.GetBufferSize]ring.InstanceDesc
		hosts, zones [ring.GetBufferSize]string
	)
	rs, err := d.ring.Get(0, ring.WriteNoExtend, descs[:0], hosts[:0], zones[:0])
	return err == nil && len(rs.Instances) == n
}

// pushTo sends an ingester its share of a request. It runs on a goroutine
// of its own (DoBatch's), where a panic would end the process: a panic is
// recovered, logged, counted and the push counts as a failed replica.
func (d *Distributor) pushTo(ctx context.Context, inst ring.InstanceDesc, enc *client.EncodedRequest) (err error) {
	defer func() {
		if p := recover(); p != nil {
			d.panicked(ctx, p, "msg", "panic while pushing to an ingester", "ingester", inst.Id)
			err = apierror.New(apierror.Internal, apierror.IDInternal, "internal error while pushing to ingester %s", inst.Id)
		}
	}()
	c, err := d.ingesters(inst)
	if err != nil {
		return err
	}
	if ep, ok := c.(EncodedPusher); ok {
		return ep.PushEncoded(ctx, enc)
	}
	return c.Push(ctx, enc.Request())
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

// dropInactive drops the metric series of the workspaces that have not
// pushed for inactiveWorkspaceTimeout.
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
		d.metrics.deleteWorkspace(ws)
	}
}

// ForgetWorkspace drops the metric series of a deleted workspace at once.
func (d *Distributor) ForgetWorkspace(workspace string) {
	d.activityMu.Lock()
	delete(d.lastPush, workspace)
	d.activityMu.Unlock()
	d.metrics.deleteWorkspace(workspace)
}

// shardToken hashes the workspace and the (sorted) labels of a series with
// 32-bit FNV-1a: every replica of a series, and every sample of it, lands on
// the same ingesters.
func shardToken(workspace string, ls []prompb.Label) uint32 {
	const (
		offset = 2166136261
		prime  = 16777619
	)
	h := uint32(offset)
	for i := 0; i < len(workspace); i++ {
		h = (h ^ uint32(workspace[i])) * prime
	}
	for _, l := range ls {
		h = (h ^ 0xff) * prime
		for i := 0; i < len(l.Name); i++ {
			h = (h ^ uint32(l.Name[i])) * prime
		}
		h = (h ^ 0xfe) * prime
		for i := 0; i < len(l.Value); i++ {
			h = (h ^ uint32(l.Value[i])) * prime
		}
	}
	return h
}

// quorumError gives a failed replicated write its user-facing wording: client
// errors (the samples themselves were refused) keep theirs; anything else
// means too few ingesters stored the samples, which the sender should retry.
func quorumError(err error) error {
	if apierror.IsClientError(err) {
		return err
	}
	return apierror.New(apierror.Unavailable, apierror.IDIngesterUnavailable,
		"samples were not stored on a quorum of ingesters, retry the request: %s", apierror.Message(err))
}
