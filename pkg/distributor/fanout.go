package distributor

import (
	"context"
	"runtime/debug"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/ingester/client"
)

// fanOut is the last stage: it shards the request's series over the
// ingester ring and writes each to its replicas, returning once a quorum of
// each stored it. It takes cleanup over (setting *handedOff) at the point
// where another goroutine may outlive the call: cleanup runs once every
// replica answered.
func (d *Distributor) fanOut(ctx context.Context, s *pushState, cleanup func(), handedOff *bool) error {
	req := &s.req.WriteRequest
	// Ingester pushes outlive the HTTP request when a slow replica is still
	// writing after quorum: give them their own deadline.
	pushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.RemoteTimeout)
	if d.single() {
		// One ingester holds everything (monolithic mode): no sharding,
		// and the push is done when the call returns.
		defer cancel()
		rs, err := d.ring.Get(0, ring.WriteNoExtend, nil, nil, nil)
		if err != nil {
			return err
		}
		if len(rs.Instances) != 1 {
			return apierror.New(apierror.Unavailable, apierror.IDIngesterUnavailable, "no healthy ingester in the ring")
		}
		c, err := d.ingesters(rs.Instances[0])
		if err != nil {
			return err
		}
		return c.Push(pushCtx, req)
	}

	raw := s.req.Raw
	opts := ring.DoBatchOptions{IsClientError: apierror.IsClientError, Go: d.spawn}
	// DoBatch waits on ctx, not on pushCtx: Cleanup cancels pushCtx once
	// every replica answered, which may be before DoBatch reads the
	// replicas' verdict, and it would then answer "context canceled"
	// (a 503) in place of it.
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
		*handedOff = true
		return ring.DoBatchWithOptions(ctx, ring.WriteNoExtend, d.ring, []uint32{0}, func(inst ring.InstanceDesc, _ []int) error {
			return d.pushTo(pushCtx, inst, enc)
		}, opts)
	}
	keysPtr := d.keys.Get().(*[]uint32)
	keys := (*keysPtr)[:0]
	for i := range req.Timeseries {
		keys = append(keys, shardToken(s.workspace, req.Timeseries[i].Labels))
	}
	// Metadata goes to the replicas of its metric name, so that every
	// entry of one name is on the same ingesters (their per-metric limit
	// holds there); its keys follow the series' (see NewEncodedRequest).
	for i := range req.Metadata {
		keys = append(keys, metadataToken(s.workspace, req.Metadata[i].MetricFamilyName))
	}
	opts.Cleanup = func() {
		cancel()
		*keysPtr = keys[:0]
		d.keys.Put(keysPtr)
		cleanup()
	}
	*handedOff = true
	return ring.DoBatchWithOptions(ctx, ring.WriteNoExtend, d.ring, keys, func(inst ring.InstanceDesc, idxs []int) error {
		enc := client.NewEncodedRequest(req, raw, idxs, d.encoded)
		defer enc.Release() // sent once: the call has encoded it
		return d.pushTo(pushCtx, inst, enc)
	}, opts)
}

// single tells whether one ingester holds every series, with no replicas.
func (d *Distributor) single() bool {
	return d.ring.ReplicationFactor() == 1 && d.ring.InstancesCount() == 1
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

func stack() string { return string(debug.Stack()) }

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

// metadataToken is the shard token of a metric name's metadata: that of a
// series with the name as its only label.
func metadataToken(workspace, name string) uint32 {
	ls := [1]prompb.Label{{Name: "__name__", Value: name}}
	return shardToken(workspace, ls[:])
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
