package alertmanager

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/api"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/marker"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
	"golang.org/x/time/rate"

	"github.com/vigil-metrics/vigil/pkg/alertmanager/definition"
	"github.com/vigil-metrics/vigil/pkg/logging"
)

// The kinds of state a workspace's replicas share: its silences and its
// notification log (Alertmanager's gossip names them alike).
const (
	stateSilences = "sil"
	stateNflog    = "nfl"
)

// peer is what an instance knows of the other replicas of its workspace:
// its position among them (the first notifies at once, the next after one
// peer timeout, ...: the notification log they share tells the later ones
// what was sent), and when the state they hold has been read.
type peer interface {
	Position() int
	WaitReady(ctx context.Context) error
}

// instanceOptions are what a workspace's Alertmanager is built from.
type instanceOptions struct {
	workspace   string
	externalURL *url.URL
	// retention is how long silences and notification log entries are kept
	// after they end.
	retention   time.Duration
	peerTimeout time.Duration
	peer        peer
	// broadcast sends a change of a kind of state to the other replicas.
	broadcast func(key string, b []byte)
	// limits bound the alerts and silences the instance holds, and egress
	// what its receivers may reach; both are read at each use.
	limits func() instanceLimits
	egress func() *definition.Egress
	logger *slog.Logger
	usage  *usage
	// event records a WARN or ERROR event of the workspace: in the
	// process's log and its vended logs; vended in its vended logs only
	// (the logger writes the process's log).
	event, vended func(level, msg string)
}

// instance is one workspace's Alertmanager, built from Alertmanager's own
// packages: the alerts it holds, its silences, notification log, routing
// (dispatcher), inhibition, receivers and v2 API.
type instance struct {
	opts     instanceOptions
	log      *slog.Logger // the workspace's
	reg      *prometheus.Registry
	alerts   *mem.Alerts
	silences *silence.Silences
	silencer *silence.Silencer
	nflog    *nflog.Log
	marker   marker.GroupMarker
	api      *api.API
	handler  http.Handler
	pipeline *notify.PipelineBuilder
	dmetrics *dispatch.DispatcherMetrics
	recorder eventrecorder.Recorder
	limiter  *alertsLimiter
	// notifications is the workspace's notification rate limit (nil: none).
	notifications *rate.Limiter

	mu         sync.Mutex // applying a configuration
	dispatcher atomic.Pointer[dispatch.Dispatcher]
	inhibitor  atomic.Pointer[inhibit.Inhibitor]
	hash       [32]byte // of the definition in force
	started    time.Time

	stop chan struct{}
	wg   sync.WaitGroup
}

// newInstance builds a workspace's Alertmanager with no configuration yet;
// state (silences, notification log) is merged in afterwards.
func newInstance(o instanceOptions) (*instance, error) {
	in := &instance{opts: o, reg: prometheus.NewRegistry(), marker: marker.NewGroupMarker(), recorder: eventrecorder.NopRecorder(),
		started: time.Now(), stop: make(chan struct{})}
	log := o.logger.With("workspace", o.workspace)
	if o.vended != nil {
		// Its WARN and ERROR events also go to the workspace's vended logs.
		log = slog.New(logging.Events(log.Handler(), o.vended))
	}
	in.log = log
	var err error
	in.nflog, err = nflog.New(nflog.Options{Retention: o.retention, Logger: log.With("component", "nflog"), Metrics: in.reg})
	if err != nil {
		return nil, fmt.Errorf("notification log: %w", err)
	}
	in.nflog.SetBroadcast(func(b []byte) { o.broadcast(stateNflog, b) })
	in.silences, err = silence.New(silence.Options{
		Retention: o.retention,
		Limits: silence.Limits{
			MaxSilences:         func() int { return o.limits().maxSilences },
			MaxSilenceSizeBytes: func() int { return o.limits().maxSilenceSizeBytes },
		},
		Logger: log.With("component", "silences"), Metrics: in.reg, EventRecorder: in.recorder,
	})
	if err != nil {
		return nil, fmt.Errorf("silences: %w", err)
	}
	in.silences.SetBroadcast(func(b []byte) { o.broadcast(stateSilences, b) })
	in.silencer = silence.NewSilencer(in.silences, log, in.recorder)
	in.notifications = rate.NewLimiter(rate.Inf, 1)
	in.refresh()
	in.limiter = &alertsLimiter{limits: o.limits, sizes: map[model.Fingerprint]int{}, usage: o.usage, workspace: o.workspace, logger: log}
	ff := featurecontrol.NoopFlags{}
	in.alerts, err = mem.NewAlerts(context.Background(), 30*time.Minute, 0, callbacks{limiter: in.limiter, silencer: in.silencer}, log, in.recorder, in.reg, ff)
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	in.api, err = api.New(api.Options{
		Alerts: in.alerts, Silences: in.silences, GroupMutedFunc: in.marker.Muted,
		Logger: log.With("component", "api"), Registry: in.reg, Concurrency: 4,
		RequestDuration: promauto.With(in.reg).NewHistogramVec(prometheus.HistogramOpts{
			Name: "alertmanager_http_request_duration_seconds", Help: "Latencies of the v2 API's requests.",
		}, []string{"handler", "method", "code"}),
		GroupFunc: func(ctx context.Context, rf func(*dispatch.Route) bool, af func(*alert.Alert, time.Time) bool) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
			d := in.dispatcher.Load()
			if d == nil {
				return nil, nil, nil
			}
			return d.Groups(ctx, rf, af)
		},
	})
	if err != nil {
		in.alerts.Close()
		return nil, fmt.Errorf("API: %w", err)
	}
	in.handler = in.api.Register(route.New(), "/")
	in.pipeline = notify.NewPipelineBuilder(in.reg, ff, in.recorder)
	in.dmetrics = dispatch.NewDispatcherMetrics(false, in.reg, ff)
	for _, m := range []func(time.Duration, string, <-chan struct{}, func() (int64, error)){
		func(i time.Duration, f string, s <-chan struct{}, _ func() (int64, error)) {
			in.silences.Maintenance(i, f, s, nil)
		},
		func(i time.Duration, f string, s <-chan struct{}, _ func() (int64, error)) {
			in.nflog.Maintenance(i, f, s, nil)
		},
	} {
		in.wg.Add(1)
		go func() { defer in.wg.Done(); m(15*time.Minute, "", in.stop, nil) }()
	}
	return in, nil
}

// callbacks chains the alert store's callbacks: the limiter's, which may
// refuse an alert, then the silencer's.
type callbacks struct {
	limiter  *alertsLimiter
	silencer *silence.Silencer
}

func (c callbacks) PreStore(a *types.Alert, existing bool) error {
	if err := c.limiter.PreStore(a, existing); err != nil {
		return err
	}
	return c.silencer.PreStore(a, existing)
}
func (c callbacks) PostStore(a *types.Alert, existing bool) {
	c.limiter.PostStore(a, existing)
	c.silencer.PostStore(a, existing)
}
func (c callbacks) PostDelete(a *types.Alert) {
	c.limiter.PostDelete(a)
	c.silencer.PostDelete(a)
}
func (c callbacks) PostGC(fps model.Fingerprints) {
	c.limiter.PostGC(fps)
	c.silencer.PostGC(fps)
}

// apply puts a checked definition in force, unless it is the one in force.
// Everything that can fail is built first: a definition whose receivers
// cannot be built leaves the one in force running.
func (in *instance) apply(loaded *definition.Loaded, raw []byte) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	sum := sha256.Sum256(raw)
	if sum == in.hash && in.dispatcher.Load() != nil {
		return nil
	}
	conf, tmpl := loaded.Config, loaded.Templates
	tmpl.ExternalURL = in.opts.externalURL
	routes := dispatch.NewRoute(conf.Route, nil)
	used := map[string]bool{}
	routes.Walk(func(r *dispatch.Route) { used[r.RouteOpts.Receiver] = true })
	log := in.log
	receivers := make(map[string][]notify.Integration, len(used))
	for _, rcv := range conf.Receivers {
		if !used[rcv.Name] {
			continue
		}
		// Email dials its smarthost itself: it is built pinned to the
		// addresses the firewall allows.
		others := rcv
		others.EmailConfigs, others.SNSConfigs = nil, nil
		integrations, err := receiver.BuildReceiverIntegrations(others, tmpl, log, commoncfg.WithDialContextFunc(in.dial))
		if err != nil {
			return err
		}
		integrations = append(integrations, emailIntegrations(rcv, tmpl, log, in.opts.egress)...)
		// SNS publishes with AMP's message rules.
		sns, err := snsIntegrations(rcv, tmpl, log, in.dial, in.event)
		if err != nil {
			return err
		}
		integrations = append(integrations, sns...)
		receivers[rcv.Name] = throttle(integrations, in.notifications, in.opts.usage, in.opts.workspace, rcv.Name)
	}
	intervals := map[string][]timeinterval.TimeInterval{}
	for _, ti := range conf.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range conf.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	if old := in.inhibitor.Load(); old != nil {
		old.Stop()
	}
	if old := in.dispatcher.Load(); old != nil {
		old.Stop()
	}
	inhibitor := inhibit.NewInhibitor(in.alerts, conf.InhibitRules, log, in.recorder)
	wait := func() time.Duration { return time.Duration(in.opts.peer.Position()) * in.opts.peerTimeout }
	stage := in.pipeline.New(receivers, wait, inhibitor, in.silencer, timeinterval.NewIntervener(intervals), in.marker, in.nflog, in.opts.peer)
	in.api.Update(conf, func(ctx context.Context, labels model.LabelSet) {
		if i := in.inhibitor.Load(); i != nil {
			i.Mutes(ctx, labels)
		}
		in.silencer.Mutes(ctx, labels)
	})
	d := dispatch.NewDispatcher(in.alerts, routes, stage, in.marker, func(t time.Duration) time.Duration { return t + wait() },
		30*time.Second, aggregationLimit(in.opts.limits), log, in.recorder, in.dmetrics, tmpl)
	go inhibitor.Run()
	inhibitor.WaitForLoading()
	in.inhibitor.Store(inhibitor)
	go d.Run(in.started)
	d.WaitForLoading()
	in.dispatcher.Store(d)
	in.hash = sum
	return nil
}

// aggregationLimit is the workspace's aggregation groups limit, read at
// each use.
type aggregationLimit func() instanceLimits

func (l aggregationLimit) MaxNumberOfAggregationGroups() int { return l().maxAggregationGroups }

// dial connects the receivers' HTTP clients through the workspace's
// receivers firewall as it is now.
func (in *instance) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return in.opts.egress().DialContext(ctx, network, addr)
}

// event records a WARN or ERROR of the workspace's Alertmanager, in AMP's
// words: in the process's log, labelled by workspace, and in the
// workspace's vended logs.
func (in *instance) event(level, msg string) {
	if in.opts.event != nil {
		in.opts.event(level, msg)
	}
}

// refresh applies the workspace's notification rate limit as it is now.
func (in *instance) refresh() {
	l := in.opts.limits()
	if l.notificationRate > 0 {
		in.notifications.SetLimit(rate.Limit(l.notificationRate))
		in.notifications.SetBurst(max(l.notificationBurst, 1))
	} else {
		in.notifications.SetLimit(rate.Inf)
	}
}

// merge merges a replica's state of one kind into this instance's.
func (in *instance) merge(key string, b []byte) error {
	switch key {
	case stateSilences:
		return in.silences.Merge(b)
	case stateNflog:
		return in.nflog.Merge(b)
	}
	return fmt.Errorf("unknown state %q", key)
}

// state returns this instance's full state of one kind.
func (in *instance) state(key string) ([]byte, error) {
	switch key {
	case stateSilences:
		return in.silences.MarshalBinary()
	case stateNflog:
		return in.nflog.MarshalBinary()
	}
	return nil, fmt.Errorf("unknown state %q", key)
}

// close stops the instance: its dispatcher (no more notifications), its
// inhibitor, its maintenance and its alerts.
func (in *instance) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if d := in.dispatcher.Load(); d != nil {
		d.Stop()
	}
	if i := in.inhibitor.Load(); i != nil {
		i.Stop()
	}
	select {
	case <-in.stop:
	default:
		close(in.stop)
	}
	in.wg.Wait()
	in.alerts.Close()
}
