package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/promslog"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/alertmanager/definition"
	"github.com/vigil-metrics/vigil/pkg/limits"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/subservices"
)

// Definition is a workspace's alert manager definition as stored: its
// document, and the version of the document (changed by every write).
type Definition struct {
	Data    []byte
	Version int64
}

// Definitions reads every active workspace's alert manager definition.
type Definitions interface {
	Definitions(ctx context.Context) (map[string]Definition, error)
}

// Limits are a workspace's alert manager limits: its definition's checks
// and the bounds of what its Alertmanager holds.
type Limits interface {
	DefinitionChecks(workspace string) (definition.Limits, *definition.Egress)
	AlertmanagerLimits(workspace string) limits.AlertmanagerLimits
}

// VendedLogs writes a workspace's WARN and ERROR events where its logging
// configuration says (AMP's vended logs).
type VendedLogs interface {
	Event(workspace, component, level, msg string)
}

// SetVendedLogs makes the workspaces' events go to v too. Call it before
// the alertmanager starts.
func (m *Multitenant) SetVendedLogs(v VendedLogs) { m.vended = v }

// Client sends a request to one alertmanager's InternalPrefix.
type Client = func(ctx context.Context, req *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error)

// ringOp: the alertmanagers a workspace runs on.
var ringOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)

// workspaceToken is the ring token of a workspace.
func workspaceToken(ws string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(ws))
	return h.Sum32()
}

// Replicas returns the alertmanagers of a workspace, in ring order: the
// same order on every process, which is each replica's position.
func Replicas(r ring.ReadRing, ws string) ([]ring.InstanceDesc, error) {
	set, err := r.Get(workspaceToken(ws), ringOp, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	return set.Instances, nil
}

// Multitenant runs the Alertmanagers of the workspaces this process is a
// replica of.
type Multitenant struct {
	services.Service
	cfg     Config
	defs    Definitions
	limits  Limits
	ring    ring.ReadRing
	member  *ringmember.ActiveMember
	bucket  objstore.Bucket
	client  func(ring.InstanceDesc) (Client, error)
	subs    *subservices.Group
	logger  log.Logger
	slogger *slog.Logger
	usage   *usage
	syncs   *prometheus.CounterVec
	sent    *prometheus.CounterVec

	// vended writes the workspaces' WARN and ERROR events to their logging
	// configuration's destination (nil: none).
	vended VendedLogs

	mu        sync.Mutex
	instances map[string]*running
	lastFail  time.Time
	// outbox holds the state changes to send to the other replicas.
	outbox chan stateChange
}

// running is a workspace's Alertmanager and the version of the definition
// it runs.
type running struct {
	in        *instance
	version   int64
	peer      *replicaPeer
	persisted time.Time // when its state was last written to object storage
}

type stateChange struct {
	workspace, key string
	data           []byte
}

// New returns the alertmanager: it joins the ring through member, reads
// the definitions through defs, keeps state snapshots in bucket and
// reaches the other alertmanagers through client.
func New(cfg Config, defs Definitions, lim Limits, r ring.ReadRing, member *ringmember.ActiveMember, bucket objstore.Bucket,
	client func(ring.InstanceDesc) (Client, error), reg prometheus.Registerer, logger log.Logger) *Multitenant {
	m := &Multitenant{cfg: cfg, defs: defs, limits: lim, ring: r, member: member, bucket: bucket, client: client,
		subs: subservices.NewGroup(member), logger: log.With(logger, "component", "alertmanager"),
		slogger: promslog.New(&promslog.Config{}).With("component", "alertmanager"), usage: newUsage(reg),
		instances: map[string]*running{}, outbox: make(chan stateChange, 4096)}
	f := promauto.With(reg)
	m.syncs = f.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_alertmanager_syncs_total",
		Help: "Reads of the alert manager definitions and the ring by this alertmanager, by outcome.",
	}, []string{"outcome"})
	m.sent = f.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_alertmanager_state_replications_total",
		Help: "Changes of silences or notification logs sent to the other replicas of their workspace, by outcome (ok, failed, dropped when the queue was full).",
	}, []string{"outcome"})
	reg.MustRegister(collector{m})
	m.Service = services.NewTimerService(cfg.PollInterval, m.starting, m.iteration, m.stopping)
	return m
}

// InstanceID is this alertmanager's ID in the ring.
func (m *Multitenant) InstanceID() string { return m.member.InstanceID() }

func (m *Multitenant) starting(ctx context.Context) error {
	if err := m.subs.Start(ctx); err != nil {
		return err
	}
	for range 4 {
		go m.replicate()
	}
	// A first read that fails (object storage away) is retried at the
	// next poll rather than fail the process.
	if err := m.sync(ctx); err != nil {
		level.Warn(m.logger).Log("msg", "reading the alert manager definitions failed; retrying at the next poll", "err", err)
	}
	return nil
}

func (m *Multitenant) iteration(ctx context.Context) error {
	if err := m.sync(ctx); err != nil {
		level.Warn(m.logger).Log("msg", "reading the alert manager definitions failed; the Alertmanagers running go on", "err", err)
	}
	m.persistDue(ctx)
	return nil
}

// stopping writes every workspace's state to object storage and stops its
// Alertmanager.
func (m *Multitenant) stopping(error) error {
	m.mu.Lock()
	all := m.instances
	m.instances = map[string]*running{}
	m.mu.Unlock()
	// Each stops notifying first, so that what it sent is in what it
	// writes.
	for ws, r := range all {
		r.in.close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := m.persist(ctx, ws, r.in); err != nil {
			level.Warn(m.logger).Log("msg", "writing the state to object storage failed", "workspace", ws, "err", err)
		}
		cancel()
	}
	close(m.outbox)
	return m.subs.Stop()
}

// owns tells whether this process is a replica of the workspace.
func (m *Multitenant) owns(ws string) (bool, error) {
	replicas, err := Replicas(m.ring, ws)
	if err != nil {
		return false, err
	}
	for _, inst := range replicas {
		if inst.Id == m.InstanceID() {
			return true, nil
		}
	}
	return false, nil
}

// sync starts the Alertmanagers of the workspaces this process is now a
// replica of, applies changed definitions, and stops the others.
func (m *Multitenant) sync(ctx context.Context) error {
	defs, err := m.defs.Definitions(ctx)
	if err != nil {
		m.syncs.WithLabelValues("failed").Inc()
		return err
	}
	want := map[string]Definition{}
	for ws, d := range defs {
		mine, err := m.owns(ws)
		if err != nil {
			m.syncs.WithLabelValues("failed").Inc()
			return fmt.Errorf("read the alertmanager ring: %w", err)
		}
		if mine {
			want[ws] = d
		}
	}
	m.mu.Lock()
	stale := map[string]*running{}
	for ws, r := range m.instances {
		if _, ok := want[ws]; !ok {
			stale[ws] = r
			delete(m.instances, ws)
		}
	}
	m.mu.Unlock()
	for ws, r := range stale {
		r.in.close()
		if _, defined := defs[ws]; defined {
			// The workspace moved to other replicas: its state goes to
			// object storage for whoever takes it.
			if err := m.persist(ctx, ws, r.in); err != nil {
				level.Warn(m.logger).Log("msg", "writing the state to object storage failed", "workspace", ws, "err", err)
			}
			continue
		}
		// The definition (or the workspace) was deleted: so are its
		// silences and notification log.
		if err := m.bucket.Delete(ctx, stateObject(ws)); err != nil && !m.bucket.IsObjNotFoundErr(err) {
			level.Warn(m.logger).Log("msg", "deleting the state snapshot failed", "workspace", ws, "err", err)
		}
	}
	for ws, d := range want {
		if err := m.ensure(ctx, ws, d); err != nil {
			level.Warn(m.logger).Log("msg", "the workspace's alert manager definition cannot be put in force; the one before stays", "workspace", ws, "err", err)
		}
	}
	m.pullState(ctx, want)
	m.syncs.WithLabelValues("ok").Inc()
	return nil
}

// pullState merges, at every sync, the state the other replicas of each
// workspace hold: a change whose broadcast was lost reaches every replica
// within a poll interval (what Alertmanager's gossip does by push-pull).
func (m *Multitenant) pullState(ctx context.Context, workspaces map[string]Definition) {
	// Several workspaces at once, all within a poll interval: a replica
	// that does not answer delays no other work of the loop past it.
	ctx, cancel := context.WithTimeout(ctx, m.cfg.PollInterval)
	defer cancel()
	slots := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for ws := range workspaces {
		in := m.instance(ws)
		if in == nil {
			continue
		}
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			m.mergePeers(ctx, ws, in)
		}()
	}
	wg.Wait()
}

// ensure runs the workspace's Alertmanager with its definition.
func (m *Multitenant) ensure(ctx context.Context, ws string, d Definition) error {
	m.mu.Lock()
	r := m.instances[ws]
	m.mu.Unlock()
	if r != nil {
		r.in.refresh()
		if r.version == d.Version {
			return nil
		}
	}
	lim, eg := m.limits.DefinitionChecks(ws)
	loaded, err := definition.Parse(d.Data, lim, eg)
	if err != nil {
		return err
	}
	if r != nil {
		if err := r.in.apply(loaded, d.Data); err != nil {
			return err
		}
		r.version = d.Version
		return nil
	}
	// A new Alertmanager answers only once its first definition is in
	// force: until then the API says the workspace has none.
	if r, err = m.start(ctx, ws); err != nil {
		return err
	}
	if err := r.in.apply(loaded, d.Data); err != nil {
		r.in.close()
		return err
	}
	r.version = d.Version
	m.mu.Lock()
	m.instances[ws] = r
	m.mu.Unlock()
	return nil
}

// start builds a workspace's Alertmanager and gives it the state its
// workspace has: the snapshot in object storage, then what the other
// replicas hold. It notifies only once both were read (or failed).
func (m *Multitenant) start(ctx context.Context, ws string) (*running, error) {
	ext, err := m.cfg.externalURL(ws)
	if err != nil {
		return nil, err
	}
	p := &replicaPeer{m: m, ws: ws, ready: make(chan struct{})}
	in, err := newInstance(instanceOptions{
		workspace: ws, externalURL: ext, retention: m.cfg.Retention, peerTimeout: m.cfg.PeerTimeout, peer: p,
		broadcast: func(key string, b []byte) { m.enqueue(ws, key, b) },
		// The limits and the firewall are read at each use: a change of
		// the overrides applies to the Alertmanagers running.
		limits: func() instanceLimits {
			al := m.limits.AlertmanagerLimits(ws)
			return instanceLimits{
				maxAlerts: al.MaxAlerts, maxAlertsSizeBytes: al.MaxAlertsSizeBytes, maxAggregationGroups: al.MaxAggregationGroups,
				maxSilences: al.MaxSilences, maxSilenceSizeBytes: al.MaxSilenceSizeBytes,
				notificationRate: al.NotificationRateLimit, notificationBurst: al.NotificationBurstSize,
			}
		},
		egress: func() *definition.Egress {
			_, eg := m.limits.DefinitionChecks(ws)
			return eg
		},
		logger: m.slogger, usage: m.usage,
		event: func(lvl, msg string) { m.event(ws, lvl, msg) },
		vended: func(lvl, msg string) {
			if m.vended != nil {
				m.vended.Event(ws, "alertmanager", lvl, msg)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	r := &running{in: in, version: -1, peer: p, persisted: time.Now()}
	m.restore(ctx, ws, in)
	close(p.ready)
	return r, nil
}

// instance returns the workspace's Alertmanager on this process, if any.
func (m *Multitenant) instance(ws string) *instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.instances[ws]; r != nil {
		return r.in
	}
	return nil
}

// replicaPeer is an instance's view of its workspace's replicas.
type replicaPeer struct {
	m     *Multitenant
	ws    string
	ready chan struct{}
}

// Position is this replica's place among the workspace's healthy
// replicas; a replica that cannot read the ring counts itself first, so
// that a notification is sent rather than lost, and one that is no longer
// a replica (its workspace moving away) last.
func (p *replicaPeer) Position() int {
	replicas, err := Replicas(p.m.ring, p.ws)
	if err != nil {
		return 0
	}
	for i, inst := range replicas {
		if inst.Id == p.m.InstanceID() {
			return i
		}
	}
	return len(replicas)
}

// WaitReady returns once the instance has read its workspace's state.
func (p *replicaPeer) WaitReady(ctx context.Context) error {
	select {
	case <-p.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// collector serves the usage gauges of the Alertmanagers running.
type collector struct{ m *Multitenant }

func (c collector) Describe(ch chan<- *prometheus.Desc) { c.m.usage.describe(ch) }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	all := make(map[string]*instance, len(c.m.instances))
	for ws, r := range c.m.instances {
		all[ws] = r.in
	}
	c.m.mu.Unlock()
	for ws, in := range all {
		c.m.usage.collect(ch, ws, in)
	}
}

// event records a WARN or ERROR event of a workspace's Alertmanager: in
// this process's log, labelled by workspace, and in the workspace's vended
// logs when it has a logging configuration.
func (m *Multitenant) event(ws, lvl, msg string) {
	l := level.Warn(m.logger)
	if lvl == "ERROR" {
		l = level.Error(m.logger)
	}
	l.Log("msg", msg, "workspace", ws)
	if m.vended != nil {
		m.vended.Event(ws, "alertmanager", lvl, msg)
	}
}

// replaceWorkspace fills {workspace} in a template.
func replaceWorkspace(template, ws string) string {
	return strings.ReplaceAll(template, "{workspace}", ws)
}

var errNoReplica = errors.New("no alertmanager replica of the workspace is healthy")
