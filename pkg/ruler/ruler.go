// Package ruler evaluates the rule groups of every workspace: each group
// by exactly one healthy ruler of the ruler ring, with Prometheus's rules
// manager, one per workspace.
package ruler

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/grpcclient"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc"

	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/subservices"
)

// Config configures the ruler.
type Config struct {
	EvaluationInterval time.Duration `yaml:"evaluation_interval"`
	PollInterval       time.Duration `yaml:"poll_interval"`
	AlertmanagerURL    string        `yaml:"alertmanager_url"`
	ResendDelay        time.Duration `yaml:"resend_delay"`
	OutageTolerance    time.Duration `yaml:"for_outage_tolerance"`
	ForGracePeriod     time.Duration `yaml:"for_grace_period"`
	HandoffWait        time.Duration `yaml:"handoff_wait"`

	// Ring is the ruler ring: each rule group is evaluated by the first
	// healthy ruler of its token.
	Ring ringmember.Config `yaml:"ring"`
	// Client dials the rulers whose groups the rules and alerts APIs read.
	Client grpcclient.Config `yaml:"grpc_client_config"`
}

const (
	// RingName names the ruler ring in metrics and logs.
	RingName = "ruler"
	// RingKey is the key of the ruler ring in the KV store.
	RingKey = "ruler-ring"
)

// ringDefaults: a ruler holds no data; one that left or died is forgotten
// soon, so that its groups move on. Its heartbeat times out after three
// missed heartbeats, so that a dead ruler's groups move within AMP's
// shortest evaluation interval (30 s): the timeout plus a poll.
var ringDefaults = ringmember.Defaults{
	Member:                     "ruler",
	ReplicationFactor:          1,
	NumTokens:                  128,
	UnregisterOnShutdown:       true,
	AutoForgetUnhealthyPeriods: 2,
	HeartbeatTimeout:           15 * time.Second,
}

// RegisterFlags registers the ruler's flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.EvaluationInterval, "ruler.evaluation-interval", time.Minute, "Evaluation interval of a rule group that sets none (Prometheus's default).")
	f.DurationVar(&c.PollInterval, "ruler.poll-interval", 10*time.Second, "How often each ruler reads the ruler ring and the workspaces' rule groups namespaces: a changed namespace is taken up within this, a group handed to another ruler stops within this, and a group handed to this ruler starts within this plus -ruler.handoff-wait.")
	f.StringVar(&c.AlertmanagerURL, "ruler.alertmanager-url", "", "Alertmanager the alerts of each workspace are sent to (its v2 API); {workspace} in the URL is replaced by the workspace ID. Empty: alerts are evaluated (the ALERTS series, the alerts API) but sent nowhere.")
	f.DurationVar(&c.ResendDelay, "ruler.resend-delay", time.Minute, "How long a firing alert waits before it is sent to the Alertmanager again (Prometheus's --rules.alert.resend-delay).")
	f.DurationVar(&c.OutageTolerance, "ruler.for-outage-tolerance", time.Hour, "Longest ruler outage after which an alert's for state is not restored (Prometheus's --rules.alert.for-outage-tolerance).")
	f.DurationVar(&c.HandoffWait, "ruler.handoff-wait", 0, "How long a ruler waits before it evaluates a group it was not evaluating (handed over by a ruler still heartbeating, or at its start), so that the ruler it comes from has stopped it first: no group is evaluated by two rulers at once. A group whose ruler is gone (its heartbeat timed out, or it left the ring) starts at once. It must cover a poll of the other ruler and the time the ring takes to reach both. 0: twice -ruler.poll-interval; negative: no wait.")
	f.DurationVar(&c.ForGracePeriod, "ruler.for-grace-period", 10*time.Minute, "Least for duration left to an alert restored after a restart (Prometheus's --rules.alert.for-grace-period).")
	c.Ring.RegisterFlagsWithPrefix("ruler.ring.", ringDefaults, f)
	c.Client.RegisterFlagsWithPrefix("ruler.client", f)
}

// Dialer returns how the rules API dials the rulers, with the
// -ruler.client.* settings.
func (c *Config) Dialer() (func(addr string) (*grpc.ClientConn, error), error) {
	return ringmember.Dialer(c.Client)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.EvaluationInterval <= 0 || c.PollInterval <= 0 {
		return errors.New("ruler.evaluation-interval and ruler.poll-interval must be positive")
	}
	if c.AlertmanagerURL != "" {
		if _, err := alertmanagerURL(c.AlertmanagerURL, "ws"); err != nil {
			return fmt.Errorf("ruler.alertmanager-url: %w", err)
		}
	}
	if err := c.Client.Validate(); err != nil {
		return fmt.Errorf("ruler.client: %w", err)
	}
	return c.Ring.Validate()
}

// alertmanagerURL is the Alertmanager URL of a workspace.
func alertmanagerURL(template, workspace string) (*url.URL, error) {
	u, err := url.Parse(strings.ReplaceAll(template, "{workspace}", workspace))
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", template)
	}
	return u, nil
}

// RulesFile is one rule groups namespace of a workspace as stored; its
// revision changes with its data, and is never that of a namespace of the
// same name deleted before.
type RulesFile struct {
	Name     string
	Data     []byte
	Revision int64
}

// parsedFile is a rules file as last parsed.
type parsedFile struct {
	revision int64
	groups   []rulefmt.RuleGroup
	err      error
}

// Store is where the ruler reads every workspace's rule groups namespaces.
type Store interface {
	// RulesFiles returns the namespaces of every active workspace.
	RulesFiles(ctx context.Context) (map[string][]RulesFile, error)
}

// Limits are the per-workspace settings the ruler applies.
type Limits interface {
	// RuleQueryOffset is how far back a workspace's rules query (AMP's
	// ruleQueryOffsetInSeconds).
	RuleQueryOffset(workspace string) time.Duration
}

// Member is this ruler's place in the ruler ring.
type Member interface {
	services.Service
	InstanceID() string
}

// Ruler evaluates the groups of every workspace that the ring gives it.
type Ruler struct {
	services.Service

	cfg   Config
	store Store
	// alerts is the in-process Alertmanager API alerts go to when no
	// -ruler.alertmanager-url is set (nil: none).
	alerts    http.Handler
	limits    Limits
	ring      ring.ReadRing
	member    Member
	subs      *subservices.Group
	options   workspaceOptions
	logger    log.Logger
	syncs     *prometheus.CounterVec
	evaluated prometheus.Gauge

	syncMu sync.Mutex            // one Sync at a time
	parsed map[string]parsedFile // by workspace and namespace; under syncMu
	// taken is when this ruler found it owns each group it does not
	// evaluate yet (by workspace, namespace and group); under syncMu.
	taken       map[string]time.Time
	lastFiles   map[string][]RulesFile // the files read last; under syncMu
	handoffWait time.Duration
	// lastOwners are the rulers of the last ring read, at lastOwnersAt:
	// where a group this ruler takes comes from.
	lastOwners   owners
	lastOwnersAt time.Time
	now          func() time.Time

	mu         sync.Mutex
	workspaces map[string]*workspaceRules
}

// New returns a ruler whose queries go to queryable through engine and
// whose recording rules' samples go to pusher. member is its membership of
// the ruler ring r, which the caller runs.
func New(cfg Config, store Store, limits Limits, engine promql.QueryEngine, queryable storage.Queryable, pusher Pusher, r ring.ReadRing, member Member, reg prometheus.Registerer, logger log.Logger) *Ruler {
	logger = log.With(logger, "component", "ruler")
	rl := &Ruler{cfg: cfg, store: store, limits: limits, ring: r, member: member, subs: subservices.NewGroup(member), logger: logger,
		workspaces: map[string]*workspaceRules{}, parsed: map[string]parsedFile{}, taken: map[string]time.Time{},
		handoffWait: cfg.HandoffWait, now: time.Now}
	if rl.handoffWait == 0 {
		rl.handoffWait = 2 * cfg.PollInterval
	}
	rl.options = workspaceOptions{
		engine: engine, queryable: queryable, pusher: pusher, interval: cfg.EvaluationInterval,
		queryOffset:     limits.RuleQueryOffset,
		outageTolerance: cfg.OutageTolerance, forGracePeriod: cfg.ForGracePeriod, resendDelay: cfg.ResendDelay,
		logger: promslog.New(&promslog.Config{}).With("component", "ruler"),
	}
	if cfg.AlertmanagerURL != "" {
		rl.options.notify = rl.notifier
	}
	f := promauto.With(reg)
	rl.syncs = f.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_ruler_syncs_total",
		Help: "Reads of the rule groups namespaces and the ring by this ruler, by outcome.",
	}, []string{"outcome"})
	rl.evaluated = f.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_ruler_groups",
		Help: "Rule groups this ruler evaluates.",
	})
	if reg != nil {
		reg.MustRegister(newUsage(rl))
	}
	rl.Service = services.NewBasicService(subservices.UndoFailedStart(rl.starting, rl.stopping), rl.running, rl.stopping)
	return rl
}

func (rl *Ruler) starting(ctx context.Context) error {
	if err := rl.subs.Start(ctx); err != nil {
		return err
	}
	_ = rl.Sync(ctx)
	return nil
}

func (rl *Ruler) running(ctx context.Context) error {
	t := time.NewTicker(rl.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-rl.subs.Failed():
			return err
		case <-t.C:
			_ = rl.Sync(ctx)
		}
	}
}

func (rl *Ruler) stopping(error) error {
	rl.mu.Lock()
	all := rl.workspaces
	rl.workspaces = map[string]*workspaceRules{}
	rl.mu.Unlock()
	for _, w := range all {
		w.stop()
	}
	return rl.subs.Stop()
}

var ownerOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)

// aliveOp takes every ruler of the ring whose heartbeat is fresh, whatever
// its state: one that is LEAVING may still be evaluating its groups.
var aliveOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE, ring.LEAVING, ring.PENDING, ring.JOINING}, nil)

// goneNow reports, for each ruler, whether it is known to evaluate nothing:
// it left the ring (a ruler stops its groups before it leaves) or its
// heartbeat timed out. A ring that cannot be read says nothing is gone.
func (rl *Ruler) goneNow() func(id string) bool {
	rs, err := rl.ring.GetAllHealthy(aliveOp)
	if err != nil {
		return func(string) bool { return false }
	}
	alive := map[string]bool{}
	for _, inst := range rs.Instances {
		alive[inst.Id] = true
	}
	return func(id string) bool { return !alive[id] }
}

// owners picks each group's ruler among the healthy ACTIVE rulers of the
// ring by rendezvous hashing: every ruler with the same view of the ring
// picks the same one, and when a ruler goes only its groups move.
type owners struct{ ids []string }

// ownersNow reads the healthy ACTIVE rulers of the ring.
func (rl *Ruler) ownersNow() (owners, error) {
	rs, err := rl.ring.GetAllHealthy(ownerOp)
	if err != nil {
		return owners{}, err
	}
	o := owners{}
	for _, inst := range rs.Instances {
		o.ids = append(o.ids, inst.Id)
	}
	return o, nil
}

// of returns the ruler of a group ("" when there is none).
func (o owners) of(workspace, namespace, group string) string {
	best, bestScore := "", uint64(0)
	for _, id := range o.ids {
		h := fnv.New64a()
		for _, s := range []string{workspace, namespace, group, id} {
			_, _ = h.Write([]byte(s))
			_, _ = h.Write([]byte{0})
		}
		if score := mix64(h.Sum64()); best == "" || score > bestScore || (score == bestScore && id < best) {
			best, bestScore = id, score
		}
	}
	return best
}

// mix64 is SplitMix64's finaliser: FNV-1a's hashes of keys that differ in
// their last byte (ruler-0, ruler-1) are close, and without it one ruler
// took half the groups and a dead ruler's groups all went to one other.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// rulesParser parses rules files as the control plane checked them.
var rulesParser = parser.NewParser(parser.Options{})

// Sync reads every workspace's namespaces and the ring, and makes this
// ruler evaluate exactly the groups it owns: new and changed groups start,
// groups gone or handed to another ruler stop. A failed read changes
// nothing.
func (rl *Ruler) Sync(ctx context.Context) error {
	rl.syncMu.Lock()
	defer rl.syncMu.Unlock()
	self := rl.member.InstanceID()
	// The ring first: the groups handed to another ruler stop before
	// anything is read from storage, within the new owner's wait. A ring
	// that cannot be read makes this ruler own nothing.
	who, ringErr := rl.ownersNow()
	if ringErr != nil {
		level.Warn(rl.logger).Log("msg", "cannot read the ruler ring: evaluating nothing until it can be read", "err", ringErr)
		who = owners{}
	}
	rl.release(who, self)
	// Files that cannot be read are those read last: ownership still
	// follows the ring.
	files, err := rl.store.RulesFiles(ctx)
	if err != nil {
		level.Warn(rl.logger).Log("msg", "cannot read the rule groups namespaces; evaluating those read last, retrying at the next poll", "err", err)
		files = rl.lastFiles
	} else {
		rl.lastFiles = files
	}
	if err = errors.Join(ringErr, err); err != nil {
		rl.syncs.WithLabelValues("failure").Inc()
	}
	evaluating := rl.evaluating()
	left := rl.goneNow()
	now := rl.now()
	owned := map[string][]Namespace{}
	groups := 0
	seen := map[string]bool{}
	stillTaken := map[string]bool{}
	for ws, nss := range files {
		for _, f := range nss {
			key := ws + "\x00" + f.Name
			seen[key] = true
			p, ok := rl.parsed[key]
			if !ok || p.revision != f.Revision {
				// Parsed once per revision: every ruler reads every file at
				// every poll.
				rgs, errs := rulefmt.Parse(f.Data, false, model.UTF8Validation, rulesParser, promslog.NewNopLogger())
				p = parsedFile{revision: f.Revision, err: errors.Join(errs...)}
				if rgs != nil {
					p.groups = rgs.Groups
				}
				rl.parsed[key] = p
			}
			if p.err != nil {
				level.Warn(rl.logger).Log("msg", "rules file does not parse; its groups are not evaluated", "workspace", ws, "namespace", f.Name, "err", p.err)
				continue
			}
			ns := Namespace{Name: f.Name}
			for _, g := range p.groups {
				if who.of(ws, f.Name, g.Name) != self {
					continue
				}
				// A group this ruler does not evaluate yet starts once the
				// ruler it comes from has stopped it: at once when that
				// ruler is gone (dead or left), otherwise after the wait,
				// which covers that ruler's next poll. At start, where the
				// group comes from is not known: the wait.
				gk := key + "\x00" + g.Name
				from := ""
				if now.Sub(rl.lastOwnersAt) <= rl.handoffWait {
					// Older, the ring may have moved the group since.
					from = rl.lastOwners.of(ws, f.Name, g.Name)
				}
				if !evaluating[gk] && rl.handoffWait > 0 && (from == "" || from == self || !left(from)) {
					since, ok := rl.taken[gk]
					if !ok {
						since = now
						rl.taken[gk] = now
					}
					if now.Sub(since) < rl.handoffWait {
						stillTaken[gk] = true
						continue
					}
				}
				ns.Groups = append(ns.Groups, g)
			}
			if len(ns.Groups) > 0 {
				owned[ws] = append(owned[ws], ns)
				groups += len(ns.Groups)
			}
		}
	}
	for key := range rl.parsed {
		if !seen[key] {
			delete(rl.parsed, key)
		}
	}
	for gk := range rl.taken {
		if !stillTaken[gk] {
			delete(rl.taken, gk) // started, or no longer this ruler's
		}
	}
	// The map changes under the lock; managers stop and load outside it,
	// since both wait for evaluations in flight (the usage collector and
	// RuleGroups take the lock too).
	rl.mu.Lock()
	var gone []*workspaceRules
	for ws, w := range rl.workspaces {
		if _, ok := owned[ws]; !ok {
			gone = append(gone, w)
			delete(rl.workspaces, ws)
		}
	}
	current := make(map[string]*workspaceRules, len(owned))
	for ws := range owned {
		w := rl.workspaces[ws]
		if w == nil {
			w = newWorkspaceRules(ws, rl.options)
			rl.workspaces[ws] = w
		}
		current[ws] = w
	}
	rl.mu.Unlock()
	for _, w := range gone {
		w.stop()
	}
	for ws, w := range current {
		if err := w.update(owned[ws], rl.cfg.EvaluationInterval); err != nil {
			level.Warn(rl.logger).Log("msg", "cannot load the workspace's rule groups", "workspace", ws, "err", err)
		}
	}
	rl.evaluated.Set(float64(groups))
	// A ring that could not be read (who is empty then) tells nothing of
	// where groups are: the next groups taken wait.
	rl.lastOwners, rl.lastOwnersAt = who, now
	if err != nil {
		return err
	}
	rl.syncs.WithLabelValues("success").Inc()
	return nil
}

// release stops at once, in every workspace, the groups that who does not
// give this ruler (self); the others keep running.
func (rl *Ruler) release(who owners, self string) {
	for id, w := range rl.current() {
		kept, dropped := w.owned(func(namespace, group string) bool { return who.of(id, namespace, group) == self })
		if dropped == 0 {
			continue
		}
		if err := w.update(kept, rl.cfg.EvaluationInterval); err != nil {
			level.Warn(rl.logger).Log("msg", "cannot stop the workspace's rule groups handed to another ruler", "workspace", id, "err", err)
		}
	}
}

// current returns the workspaces' rules managers, copied out of the lock
// (their calls wait for evaluations in flight).
func (rl *Ruler) current() map[string]*workspaceRules {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	ws := make(map[string]*workspaceRules, len(rl.workspaces))
	for id, w := range rl.workspaces {
		ws[id] = w
	}
	return ws
}

// evaluating returns the groups this ruler evaluates, by workspace,
// namespace and group.
func (rl *Ruler) evaluating() map[string]bool {
	out := map[string]bool{}
	for id, w := range rl.current() {
		for _, g := range w.manager.RuleGroups() {
			out[id+"\x00"+g.File()+"\x00"+g.Name()] = true
		}
	}
	return out
}

// InstanceID is this ruler's ID in the ruler ring.
func (rl *Ruler) InstanceID() string { return rl.member.InstanceID() }

// RuleGroups returns the groups this ruler evaluates, by workspace.
func (rl *Ruler) RuleGroups(workspace string) []*rules.Group {
	rl.mu.Lock()
	w := rl.workspaces[workspace]
	rl.mu.Unlock()
	if w == nil {
		return nil
	}
	return w.manager.RuleGroups()
}
