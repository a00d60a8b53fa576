package distributor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

const (
	// haKeyPrefix prefixes the keys of the HA tracker, <workspace>/<cluster>,
	// in the key-value store the process shares with its rings.
	haKeyPrefix = "ha-tracker/"
	// haDeleteAfter is how long a cluster may send nothing before it is
	// marked deleted, and then how long the mark stays before the key is
	// removed. A marked cluster no longer counts toward the workspace's
	// -distributor.ha-tracker.max-clusters.
	haDeleteAfter = 30 * time.Minute
	// haCleanupInterval is how often each distributor looks for such clusters.
	haCleanupInterval = 5 * time.Minute
)

// HATrackerConfig configures the HA tracker, which deduplicates the samples
// of Prometheus high-availability pairs.
type HATrackerConfig struct {
	Enable                 bool          `yaml:"enable"`
	UpdateTimeout          time.Duration `yaml:"update_timeout"`
	UpdateTimeoutJitterMax time.Duration `yaml:"update_timeout_jitter_max"`
	FailoverTimeout        time.Duration `yaml:"failover_timeout"`
}

// RegisterFlags registers the HA tracker flags.
func (c *HATrackerConfig) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.Enable, "distributor.ha-tracker.enable", true, "Elect one replica of each high-availability cluster and store only its samples, in the workspaces where -distributor.ha-tracker.enable-for-all-users (or the overrides) turn deduplication on. The elections are shared by all distributors through the memberlist key-value store. AMP deduplicates HA pairs always.")
	f.DurationVar(&c.UpdateTimeout, "distributor.ha-tracker.update-timeout", 15*time.Second, "How long a distributor trusts its view of an elected replica before it writes when it last heard from it to the key-value store again. Samples of the elected replica write nothing more often than this.")
	f.DurationVar(&c.UpdateTimeoutJitterMax, "distributor.ha-tracker.update-timeout-jitter-max", 5*time.Second, "Most random time added to -distributor.ha-tracker.update-timeout, drawn once per distributor, so that distributors do not all write at once.")
	f.DurationVar(&c.FailoverTimeout, "distributor.ha-tracker.failover-timeout", 30*time.Second, "How long the elected replica of a cluster may send nothing before the next replica that sends is elected. Must be greater than -distributor.ha-tracker.update-timeout plus -distributor.ha-tracker.update-timeout-jitter-max. AMP: another replica is elected after 30 seconds without samples from the elected one.")
}

// Validate checks the configuration of an enabled tracker.
func (c *HATrackerConfig) Validate() error {
	if !c.Enable {
		return nil
	}
	if c.UpdateTimeout <= 0 {
		return fmt.Errorf("distributor.ha-tracker.update-timeout must be positive")
	}
	if c.UpdateTimeoutJitterMax < 0 {
		return fmt.Errorf("distributor.ha-tracker.update-timeout-jitter-max must not be negative")
	}
	// The store hears from an elected replica only every update timeout plus
	// jitter: a shorter failover timeout would depose replicas still sending.
	if c.FailoverTimeout <= c.UpdateTimeout+c.UpdateTimeoutJitterMax {
		return fmt.Errorf("distributor.ha-tracker.failover-timeout (%s) must be greater than distributor.ha-tracker.update-timeout plus distributor.ha-tracker.update-timeout-jitter-max (%s)",
			c.FailoverTimeout, c.UpdateTimeout+c.UpdateTimeoutJitterMax)
	}
	return nil
}

// HALimits are the per-workspace limits of the HA tracker.
type HALimits interface {
	// AcceptHASamples tells whether the workspace's HA pairs are deduplicated.
	AcceptHASamples(workspace string) bool
	// HAClusterLabel names the label carrying the cluster of a sample.
	HAClusterLabel(workspace string) string
	// HAReplicaLabel names the label carrying the replica of a sample.
	HAReplicaLabel(workspace string) string
	// HAMaxClusters is the most clusters tracked for the workspace; 0: no limit.
	HAMaxClusters(workspace string) int
}

// notElectedError reports samples of a replica that is not elected.
type notElectedError struct {
	cluster, replica, elected string
}

func (e notElectedError) Error() string {
	return fmt.Sprintf("samples of replica %q of HA cluster %q are not stored: replica %q is elected", e.replica, e.cluster, e.elected)
}

// IsNotElected tells whether err reports samples of a replica that is not
// elected. It is no failure: the caller acknowledges such samples (2xx) and
// drops them, as AMP does.
func IsNotElected(err error) bool {
	var e notElectedError
	return errors.As(err, &e)
}

// HATracker elects one replica of each high-availability cluster of each
// workspace. Distributors share the elections through a key-value store:
// each keeps the values it has seen in a cache, which serves the checks of
// nearly every request, and writes the store only to elect a replica, to
// tell when the elected replica was last heard from (every update timeout)
// or to delete clusters gone silent. Its methods are safe for concurrent use.
type HATracker struct {
	services.Service

	cfg     HATrackerConfig
	client  kv.Client
	limits  HALimits
	metrics *haMetrics
	logger  log.Logger
	// now is the clock of the cleanup; tests replace it.
	now func() time.Time
	// updateTimeout is the update timeout plus this distributor's jitter.
	updateTimeout time.Duration

	mu       sync.Mutex
	clusters map[string]map[string]*haEntry // by workspace, then cluster
}

// haEntry is a distributor's view of one cluster.
type haEntry struct {
	desc replicaDesc // the latest value read from or written to the store
	// seen is when this distributor last accepted a sample of the elected
	// replica: between two writes it is later than desc.ReceivedAt.
	seen time.Time
}

// lastHeard is when the elected replica was last heard from, by any
// distributor as the store tells or by this one.
func (e *haEntry) lastHeard() time.Time {
	return later(time.UnixMilli(e.desc.ReceivedAt), e.seen)
}

type haMetrics struct {
	electedChanges   *prometheus.CounterVec
	electedTimestamp *prometheus.GaugeVec
	kvWrites         *prometheus.CounterVec
	deduplicated     *prometheus.CounterVec
}

func newHAMetrics(reg prometheus.Registerer) *haMetrics {
	f := promauto.With(reg)
	return &haMetrics{
		electedChanges: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_distributor_ha_tracker_elected_replica_changes_total",
			Help: "Failovers seen by this distributor: another replica of an HA cluster was elected, by workspace and cluster.",
		}, []string{"workspace", "cluster"}),
		electedTimestamp: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_distributor_ha_tracker_elected_replica_timestamp_seconds",
			Help: "When the elected replica of an HA cluster was last heard from, as last written to the key-value store, by workspace and cluster.",
		}, []string{"workspace", "cluster"}),
		kvWrites: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_distributor_ha_tracker_kv_writes_total",
			Help: "Values this distributor wrote to the key-value store, by operation: elect, refresh (when the elected replica was last heard from), mark_deleted.",
		}, []string{"operation"}),
		deduplicated: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_distributor_ha_tracker_deduplicated_samples_total",
			Help: "Samples of replicas that are not elected, acknowledged and dropped, by workspace and cluster.",
		}, []string{"workspace", "cluster"}),
	}
}

// NewHATracker returns an HA tracker sharing its elections through client,
// a client of the key-value store using HATrackerCodec. Its keys start with
// "ha-tracker/".
func NewHATracker(cfg HATrackerConfig, client kv.Client, limits HALimits, reg prometheus.Registerer, logger log.Logger) (*HATracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &HATracker{
		cfg:           cfg,
		client:        client,
		limits:        limits,
		metrics:       newHAMetrics(reg),
		logger:        logger,
		now:           time.Now,
		updateTimeout: cfg.UpdateTimeout,
		clusters:      map[string]map[string]*haEntry{},
	}
	if cfg.UpdateTimeoutJitterMax > 0 {
		t.updateTimeout += rand.N(cfg.UpdateTimeoutJitterMax)
	}
	t.Service = services.NewBasicService(t.starting, t.running, nil)
	return t, nil
}

// starting reads the elections already in the store, so that a restarted
// distributor neither writes every key again nor miscounts clusters.
func (t *HATracker) starting(ctx context.Context) error {
	if !t.cfg.Enable {
		return nil
	}
	t.forEachKey(ctx, func(workspace, cluster string, d *replicaDesc) {
		if d != nil {
			t.observe(workspace, cluster, *d, time.Time{})
		}
	})
	return nil
}

// running follows the store's changes and periodically deletes clusters
// gone silent.
func (t *HATracker) running(ctx context.Context) error {
	if !t.cfg.Enable {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.client.WatchPrefix(ctx, haKeyPrefix, func(key string, v any) bool {
			workspace, cluster, ok := parseHAKey(key)
			if d, isDesc := v.(*replicaDesc); ok && isDesc && d != nil {
				t.observe(workspace, cluster, *d, time.Time{})
			}
			return true
		})
		if ctx.Err() == nil {
			level.Warn(t.logger).Log("msg", "stopped following the HA tracker's key-value store: elections by other distributors are seen only when this one writes")
		}
	}()
	defer wg.Wait()

	tick := time.NewTicker(haCleanupInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.cleanup(ctx, t.now())
		case <-ctx.Done():
			return nil
		}
	}
}

// CheckReplica tells whether the samples of replica of cluster, received
// now, are to be stored: nil when replica is elected, or has just been
// elected because the elected replica sent nothing for the failover timeout.
// Otherwise it returns an error for which IsNotElected holds (the caller
// acknowledges and drops the samples); a BadData error when the workspace
// tracks -distributor.ha-tracker.max-clusters clusters already and this one
// is new; an Unavailable error when the store cannot be written to elect a
// replica. With the tracker or the workspace's deduplication disabled, or
// without a cluster or replica, every sample is stored.
func (t *HATracker) CheckReplica(ctx context.Context, workspace, cluster, replica string, now time.Time) error {
	if !t.cfg.Enable || cluster == "" || replica == "" || !t.limits.AcceptHASamples(workspace) {
		return nil
	}
	t.mu.Lock()
	e := t.clusters[workspace][cluster]
	elected := e != nil && e.desc.live() && e.desc.Replica == replica
	switch {
	case elected:
		e.seen = later(e.seen, now)
		if now.Sub(time.UnixMilli(e.desc.ReceivedAt)) < t.updateTimeout {
			t.mu.Unlock()
			return nil
		}
	case e != nil && e.desc.live():
		if now.Sub(e.lastHeard()) <= t.cfg.FailoverTimeout {
			err := notElectedError{cluster: cluster, replica: replica, elected: e.desc.Replica}
			t.mu.Unlock()
			return err
		}
	default:
		if limit := t.limits.HAMaxClusters(workspace); limit > 0 && t.liveClustersLocked(workspace) >= limit {
			t.mu.Unlock()
			return apierror.New(apierror.BadData, apierror.IDTooManyHAClusters,
				"too many HA clusters (limit: %d): samples of new cluster %q are refused until a tracked cluster has sent nothing for %d minutes; raise -distributor.ha-tracker.max-clusters (per workspace: ha_max_clusters)",
				limit, cluster, int(haDeleteAfter.Minutes()))
		}
	}
	t.mu.Unlock()

	// The names may alias the request's buffers, which are reused once it
	// is released: what the tracker keeps (cache keys, the store's value,
	// metric labels) is a copy.
	cluster, replica = strings.Clone(cluster), strings.Clone(replica)
	err := t.casReplica(ctx, workspace, cluster, replica, now)
	if err != nil && elected && !IsNotElected(err) {
		// The store could not be told that the elected replica still sends:
		// its samples are stored all the same, the next one tries again.
		level.Warn(t.logger).Log("msg", "cannot refresh the elected replica of an HA cluster", "workspace", workspace, "cluster", cluster, "err", err)
		return nil
	}
	return err
}

// casReplica reads the store's value of the cluster and writes it when
// replica is to be elected or, elected, was not reported for the update
// timeout. It answers as CheckReplica does.
func (t *HATracker) casReplica(ctx context.Context, workspace, cluster, replica string, now time.Time) error {
	var (
		nowMs = now.UnixMilli()
		out   replicaDesc // the store's value once CAS returns
		op    string      // the write done; "" for none
	)
	err := t.client.CAS(ctx, haKey(workspace, cluster), func(in any) (any, bool, error) {
		out, op = replicaDesc{}, ""
		if d, ok := in.(*replicaDesc); ok && d != nil {
			out = *d
		}
		if out.live() {
			if out.Replica == replica {
				if nowMs-out.ReceivedAt < t.updateTimeout.Milliseconds() {
					return nil, false, nil // another distributor reported it
				}
				out.ReceivedAt, op = nowMs, "refresh"
				return out.Clone(), true, nil
			}
			if nowMs-t.lastHeard(workspace, cluster, out).UnixMilli() <= t.cfg.FailoverTimeout.Milliseconds() {
				return nil, false, nil
			}
		}
		// Stamp the election after the one it replaces and after the
		// deletion mark, whatever this distributor's clock says, so that the
		// merge of every store keeps it.
		// A stamp past the end of time (a corrupt value) is not followed.
		at := nowMs
		if out.ElectedAt < math.MaxInt64 {
			at = max(at, out.ElectedAt+1)
		}
		if out.DeletedAt < math.MaxInt64 {
			at = max(at, out.DeletedAt+1)
		}
		out = replicaDesc{Replica: replica, ElectedAt: at, ReceivedAt: at, DeletedAt: out.DeletedAt}
		op = "elect"
		return out.Clone(), true, nil
	})
	if err != nil {
		return apierror.New(apierror.Unavailable, apierror.IDHATrackerUnavailable,
			"cannot read or write the elected replica of HA cluster %q, retry the request: %v", cluster, err)
	}
	if op != "" {
		t.metrics.kvWrites.WithLabelValues(op).Inc()
	}
	var seen time.Time
	if out.Replica == replica {
		seen = now
	}
	t.observe(workspace, cluster, out, seen)
	if out.Replica != replica {
		return notElectedError{cluster: cluster, replica: replica, elected: out.Replica}
	}
	return nil
}

// CountDeduplicated counts samples of a replica that is not elected, which
// the caller acknowledged and dropped.
func (t *HATracker) CountDeduplicated(workspace, cluster string, samples int) {
	// A new metric series keeps its label values: cluster may alias the
	// request's buffers.
	t.metrics.deduplicated.WithLabelValues(workspace, strings.Clone(cluster)).Add(float64(samples))
}

// lastHeard is when the elected replica of d was last heard from: d's
// report, or this distributor's own if later and of the same election.
func (t *HATracker) lastHeard(workspace, cluster string, d replicaDesc) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.clusters[workspace][cluster]; e != nil && e.desc.Replica == d.Replica && e.desc.ElectedAt == d.ElectedAt {
		return later(time.UnixMilli(d.ReceivedAt), e.seen)
	}
	return time.UnixMilli(d.ReceivedAt)
}

// observe merges a value read from or written to the store into the cache.
// The merge keeps the cache from going back to an older value notified
// late. seen, when set, is when this distributor accepted a sample of d's
// replica.
func (t *HATracker) observe(workspace, cluster string, d replicaDesc, seen time.Time) {
	if d.Replica == "" {
		return // never written: nothing to learn
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	byCluster := t.clusters[workspace]
	if byCluster == nil {
		byCluster = map[string]*haEntry{}
		t.clusters[workspace] = byCluster
	}
	e := byCluster[cluster]
	if e == nil {
		e = &haEntry{}
		byCluster[cluster] = e
	}
	prev := e.desc
	e.desc = join(prev, d)
	if e.desc.Replica != prev.Replica || e.desc.ElectedAt != prev.ElectedAt {
		e.seen = time.Time{} // what was seen was of another election
		if prev.live() && e.desc.Replica != prev.Replica {
			t.metrics.electedChanges.WithLabelValues(workspace, cluster).Inc()
		}
	}
	if d.Replica == e.desc.Replica && d.ElectedAt == e.desc.ElectedAt {
		e.seen = later(e.seen, seen)
	}
	if e.desc.live() {
		t.metrics.electedTimestamp.WithLabelValues(workspace, cluster).Set(float64(e.desc.ReceivedAt) / 1e3)
	} else {
		t.metrics.electedTimestamp.DeleteLabelValues(workspace, cluster)
	}
}

// liveClustersLocked counts the clusters of a workspace not marked deleted.
func (t *HATracker) liveClustersLocked(workspace string) int {
	n := 0
	for _, e := range t.clusters[workspace] {
		if e.desc.live() {
			n++
		}
	}
	return n
}

// ForgetWorkspace drops the cache and the metric series of a deleted
// workspace. Its keys in the store are deleted by the cleanup, as those of
// any cluster gone silent.
func (t *HATracker) ForgetWorkspace(workspace string) {
	t.mu.Lock()
	delete(t.clusters, workspace)
	t.mu.Unlock()
	t.metrics.electedChanges.DeletePartialMatch(prometheus.Labels{"workspace": workspace})
	t.metrics.electedTimestamp.DeletePartialMatch(prometheus.Labels{"workspace": workspace})
	t.metrics.deduplicated.DeletePartialMatch(prometheus.Labels{"workspace": workspace})
}

// haLabels returns the values of the cluster and replica labels of one
// series' labels, "" for a label the series lacks.
func haLabels(ls []prompb.Label, clusterLabel, replicaLabel string) (cluster, replica string) {
	for _, l := range ls {
		switch l.Name {
		case clusterLabel:
			cluster = l.Value
		case replicaLabel:
			replica = l.Value
		}
	}
	return cluster, replica
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
