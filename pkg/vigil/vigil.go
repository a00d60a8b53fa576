package vigil

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/server"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/signals"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"gopkg.in/yaml.v3"

	"github.com/vigil-metrics/vigil/pkg/alertmanager"
	"github.com/vigil-metrics/vigil/pkg/api"
	"github.com/vigil-metrics/vigil/pkg/compactor"
	"github.com/vigil-metrics/vigil/pkg/controlplane"
	"github.com/vigil-metrics/vigil/pkg/distributor"
	"github.com/vigil-metrics/vigil/pkg/inflight"
	"github.com/vigil-metrics/vigil/pkg/ingester"
	"github.com/vigil-metrics/vigil/pkg/limits"
	"github.com/vigil-metrics/vigil/pkg/querier"
	"github.com/vigil-metrics/vigil/pkg/querylog"
	"github.com/vigil-metrics/vigil/pkg/ruler"
	"github.com/vigil-metrics/vigil/pkg/storegateway"
)

// ErrStopped is returned by Start when a signal stopped the process while
// it was starting: a clean stop, not a failure.
var ErrStopped = errors.New("stopped by a signal during start-up")

// Vigil is one Vigil process: the modules of its targets and what they share.
type Vigil struct {
	Cfg        Config
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	Logger     log.Logger

	ServiceMap map[string]services.Service
	manager    *services.Manager
	signals    *signals.Handler
	// stopRequested is set when a signal asked the process to stop.
	stopRequested atomic.Bool
	stopSignals   sync.Once

	Server       *server.Server
	admin        *adminServer
	MemberlistKV *memberlist.KVInitService
	IngesterRing *ring.Ring
	// StoreGatewayRing is the ring of the store-gateways.
	StoreGatewayRing *ring.Ring
	// RulerRing is the ring of the rulers.
	RulerRing *ring.Ring
	// AlertmanagerRing is the ring of the alertmanagers.
	AlertmanagerRing *ring.Ring
	// ControlPlaneRing is the ring of the replicas serving the control plane.
	ControlPlaneRing *ring.Ring
	// DistributorRing is the ring of the distributors, which share each
	// workspace's ingestion rate.
	DistributorRing *ring.Ring
	// HATracker elects the replica of each high-availability cluster (nil
	// when disabled).
	HATracker    *distributor.HATracker
	Bucket       objstore.Bucket
	Workspaces   *controlplane.Store
	API          *api.API
	Ingester     *ingester.Ingester
	Distributor  *distributor.Distributor
	Compactor    *compactor.Compactor
	StoreGateway *storegateway.StoreGateway
	Ruler        *ruler.Ruler
	Alertmanager *alertmanager.Multitenant
	// AlertmanagerAPI serves the Alertmanager v2 API of every workspace
	// from its replicas; the ruler of this process sends its alerts there.
	AlertmanagerAPI *alertmanager.API
	// Queryable reads every workspace's series, for the querier and the
	// ruler of this process.
	Queryable *querier.Queryable
	// QueryLogger writes the query log of workspaces with a query logging
	// configuration; the querier calls it after each query.
	QueryLogger *querylog.Logger
	// VendedLogs writes the ruler's and the alertmanager's WARN and ERROR
	// events of workspaces with a logging configuration.
	VendedLogs *querylog.Logger

	Overrides *limits.Overrides
	// InflightBytes is the process's budget of request memory, shared by
	// the front door's body reads and its remote-write decoding.
	InflightBytes *inflight.Budget
}

// New validates cfg and initialises the modules of its targets. Nothing runs
// until Start.
func New(cfg Config, reg *prometheus.Registry, logger log.Logger) (*Vigil, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	t := &Vigil{Cfg: cfg, Registerer: reg, Gatherer: reg, Logger: logger}
	mm, err := t.setupModules()
	if err != nil {
		return nil, err
	}
	for _, target := range cfg.Target {
		if !mm.IsTargetableModule(target) {
			return nil, fmt.Errorf("unknown target %q; valid targets: %s", target, strings.Join(mm.UserVisibleModuleNames(), ", "))
		}
	}
	t.warnLoopbackCluster()
	t.ServiceMap, err = mm.InitModuleServices(cfg.Target...)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Start starts every service and waits, at most until ctx ends, until all
// are running.
func (t *Vigil) Start(ctx context.Context) error {
	svcs := make([]services.Service, 0, len(t.ServiceMap))
	for _, s := range t.ServiceMap {
		svcs = append(svcs, s)
	}
	m, err := services.NewManager(svcs...)
	if err != nil {
		return err
	}
	t.manager = m
	// Any service stopping or failing stops the process: a SIGTERM ends the
	// server service, which brings everything down in dependency order.
	m.AddListener(services.NewManagerListener(nil, func() {}, func(s services.Service) {
		m.StopAsync()
	}))
	stopAll := func(services.State) { m.StopAsync() }
	for _, s := range svcs {
		s.AddListener(services.NewListener(nil, nil, stopAll, stopAll, nil))
	}
	// SIGTERM or SIGINT stops every service, in dependency order, also while
	// they are still starting (replaying a WAL, joining the ring).
	t.signals = signals.NewHandler(t.Logger)
	go func() {
		t.signals.Loop()
		t.stopRequested.Store(true)
		m.StopAsync()
	}()
	// Services live until stopped, not until ctx (which bounds start-up) ends.
	if err := m.StartAsync(context.Background()); err != nil {
		return err
	}
	if err := m.AwaitHealthy(ctx); err != nil {
		_ = t.Stop()
		if t.stopRequested.Load() {
			return ErrStopped
		}
		return fmt.Errorf("start services: %w", err)
	}
	t.logStarted()
	return nil
}

// Wait blocks until every service has stopped, and returns the first failure.
func (t *Vigil) Wait() error {
	_ = t.manager.AwaitStopped(context.Background())
	t.stopSignals.Do(func() {
		if t.signals != nil {
			t.signals.Stop()
		}
	})
	for name, s := range t.ServiceMap {
		if err := s.FailureCase(); err != nil {
			return fmt.Errorf("module %s failed: %w", name, err)
		}
	}
	return nil
}

// Stop stops every service, as SIGTERM does, and waits for them.
func (t *Vigil) Stop() error {
	t.manager.StopAsync()
	return t.Wait()
}

// HTTPAddr is the address the public HTTP server listens on.
func (t *Vigil) HTTPAddr() string { return t.Server.HTTPListenAddr().String() }

// GRPCAddr is the address the gRPC server listens on.
func (t *Vigil) GRPCAddr() string { return t.Server.GRPCListenAddr().String() }

// readyHandler answers 200 once every service runs and the ingester, if this
// process has one, is ACTIVE in the ring.
func (t *Vigil) readyHandler(w http.ResponseWriter, r *http.Request) {
	if t.manager == nil || !t.manager.IsHealthy() {
		http.Error(w, "some services are not running", http.StatusServiceUnavailable)
		return
	}
	if t.Ingester != nil {
		if err := t.Ingester.CheckReady(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

// configHandler prints the effective configuration as YAML; secrets are
// masked by their flag types.
func (t *Vigil) configHandler(w http.ResponseWriter, _ *http.Request) {
	out, err := yaml.Marshal(&t.Cfg)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
	_, _ = w.Write(out)
}

// servicesHandler lists the modules of this process and their states.
func (t *Vigil) servicesHandler(w http.ResponseWriter, _ *http.Request) {
	names := make([]string, 0, len(t.ServiceMap))
	for n := range t.ServiceMap {
		names = append(names, n)
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, n := range names {
		fmt.Fprintf(w, "%s\t%s\n", n, t.ServiceMap[n].State())
	}
}

// warnLoopbackCluster warns when a process that is part of a cluster (not
// the monolith) keeps its gRPC or gossip port on loopback, the default,
// while a ring advertises an address other processes would dial: they
// could not reach it.
func (t *Vigil) warnLoopbackCluster() {
	if t.IsMonolithic() || t.Logger == nil {
		return
	}
	advertised := []string{t.Cfg.Ingester.Ring.InstanceAddr, t.Cfg.ControlPlane.Ring.InstanceAddr,
		t.Cfg.StoreGateway.Ring.InstanceAddr, t.Cfg.Compactor.Ring.InstanceAddr, t.Cfg.Ruler.Ring.InstanceAddr, t.Cfg.Alertmanager.Ring.InstanceAddr}
	for _, a := range advertised {
		if a != "" && loopback(a) {
			return // a cluster on one host's loopback, as the tests run
		}
	}
	for flag, addr := range map[string]string{"server.grpc-listen-address": t.Cfg.Server.GRPCListenAddress, "memberlist.bind-addr": strings.Join(t.Cfg.Memberlist.TCPTransport.BindAddrs, ",")} {
		if loopback(addr) {
			level.Warn(t.Logger).Log("msg", "this process of a cluster listens on loopback only; other processes cannot reach it. Set -"+flag+" to the cluster's private address (or 0.0.0.0)", "flag", flag, "address", addr)
		}
	}
}
