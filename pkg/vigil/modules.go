package vigil

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/dns"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/grafana/dskit/server"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigil-metrics/vigil/pkg/api"
	"github.com/vigil-metrics/vigil/pkg/audit"
	"github.com/vigil-metrics/vigil/pkg/auth"
	"github.com/vigil-metrics/vigil/pkg/compactor"
	"github.com/vigil-metrics/vigil/pkg/controlplane"
	"github.com/vigil-metrics/vigil/pkg/distributor"
	"github.com/vigil-metrics/vigil/pkg/frontend"
	"github.com/vigil-metrics/vigil/pkg/inflight"
	"github.com/vigil-metrics/vigil/pkg/ingester"
	"github.com/vigil-metrics/vigil/pkg/ingester/client"
	"github.com/vigil-metrics/vigil/pkg/limits"
	"github.com/vigil-metrics/vigil/pkg/pb/frontendpb"
	"github.com/vigil-metrics/vigil/pkg/pb/storegatewaypb"
	"github.com/vigil-metrics/vigil/pkg/querier"
	"github.com/vigil-metrics/vigil/pkg/querier/worker"
	"github.com/vigil-metrics/vigil/pkg/querylog"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
	"github.com/vigil-metrics/vigil/pkg/storegateway"
	sgclient "github.com/vigil-metrics/vigil/pkg/storegateway/client"
	"github.com/vigil-metrics/vigil/pkg/subservices"
)

// Module names, sorted. The targetable ones are accepted by -target.
const (
	All              = "all"
	Alertmanager     = "alertmanager"
	AlertmanagerAPI  = "alertmanager-api"
	AlertmanagerRing = "alertmanager-ring"
	API              = "api"
	Compactor        = "compactor"
	ControlPlaneRing = "controlplane-ring"
	Distributor      = "distributor"
	DistributorRing  = "distributor-ring"
	HATracker        = "ha-tracker"
	Ingester         = "ingester"
	IngesterRing     = "ingester-ring"
	MemberlistKV     = "memberlist-kv"
	Overrides        = "overrides"
	Querier          = "querier"
	QueryFrontend    = "query-frontend"
	QueryLog         = "query-log"
	VendedLogs       = "vended-logs"
	Router           = "router"
	Server           = "server"
	Storage          = "storage"
	StoreGateway     = "store-gateway"
	StoreGatewayRing = "store-gateway-ring"
	Ruler            = "ruler"
	RulerAPI         = "ruler-api"
	RulerRing        = "ruler-ring"
	Workspaces       = "workspaces"
)

// deps is the module graph: each module starts after, and stops before, the
// modules it depends on.
var deps = map[string][]string{
	All:              {API, Compactor, Distributor, Ingester, Querier, QueryFrontend, StoreGateway, Ruler, Alertmanager},
	Compactor:        {Server, MemberlistKV, Storage, Overrides, Workspaces},
	API:              {Router, ControlPlaneRing, Overrides},
	ControlPlaneRing: {MemberlistKV},
	Distributor:      {Router, IngesterRing, DistributorRing, HATracker, Overrides},
	DistributorRing:  {MemberlistKV},
	HATracker:        {MemberlistKV, Overrides},
	Ingester:         {Server, MemberlistKV, IngesterRing, Storage, Workspaces, Overrides},
	IngesterRing:     {MemberlistKV},
	MemberlistKV:     {Server},
	Overrides:        nil,
	Querier:          {Router, IngesterRing, StoreGatewayRing, Storage, Overrides, QueryLog, RulerAPI, AlertmanagerAPI},
	QueryFrontend:    {Router, Overrides, Workspaces, QueryLog, RulerAPI, AlertmanagerAPI},
	QueryLog:         {Workspaces},
	StoreGateway:     {Server, MemberlistKV, Storage, StoreGatewayRing, Overrides},
	StoreGatewayRing: {MemberlistKV},
	Router:           {Server, Workspaces},
	// The ruler queries through a querier and records through a
	// distributor of its own process.
	Ruler: {Server, MemberlistKV, RulerRing, Distributor, Querier, Workspaces, Overrides, AlertmanagerAPI, VendedLogs},
	// The rules and alerts APIs are served beside the query API, and read
	// every ruler.
	RulerAPI:  {Router, RulerRing},
	RulerRing: {MemberlistKV},
	// Each workspace's Alertmanager runs on the alertmanagers the ring
	// gives it; its v2 API is served beside the query API, from them.
	Alertmanager:     {Server, MemberlistKV, AlertmanagerRing, Storage, Workspaces, Overrides, VendedLogs},
	VendedLogs:       {Workspaces},
	AlertmanagerAPI:  {Router, AlertmanagerRing},
	AlertmanagerRing: {MemberlistKV},
	Server:           nil,
	Storage:          nil,
	Workspaces:       {Storage},
}

func (t *Vigil) setupModules() (*modules.Manager, error) {
	mm := modules.NewManager(t.Logger)
	mm.RegisterModule(Server, t.initServer, modules.UserInvisibleModule)
	mm.RegisterModule(MemberlistKV, t.initMemberlistKV, modules.UserInvisibleModule)
	mm.RegisterModule(IngesterRing, t.initIngesterRing, modules.UserInvisibleModule)
	mm.RegisterModule(ControlPlaneRing, t.initControlPlaneRing, modules.UserInvisibleModule)
	mm.RegisterModule(DistributorRing, t.initDistributorRing, modules.UserInvisibleModule)
	mm.RegisterModule(HATracker, t.initHATracker, modules.UserInvisibleModule)
	mm.RegisterModule(Overrides, t.initOverrides, modules.UserInvisibleModule)
	mm.RegisterModule(Storage, t.initStorage, modules.UserInvisibleModule)
	mm.RegisterModule(Workspaces, t.initWorkspaces, modules.UserInvisibleModule)
	mm.RegisterModule(Router, t.initRouter, modules.UserInvisibleModule)
	mm.RegisterModule(API, t.initAPI)
	mm.RegisterModule(Distributor, t.initDistributor)
	mm.RegisterModule(Ingester, t.initIngester)
	mm.RegisterModule(Querier, t.initQuerier)
	mm.RegisterModule(QueryFrontend, t.initQueryFrontend)
	mm.RegisterModule(QueryLog, t.initQueryLog, modules.UserInvisibleModule)
	mm.RegisterModule(VendedLogs, t.initVendedLogs, modules.UserInvisibleModule)
	mm.RegisterModule(Compactor, t.initCompactor)
	mm.RegisterModule(StoreGatewayRing, t.initStoreGatewayRing, modules.UserInvisibleModule)
	mm.RegisterModule(StoreGateway, t.initStoreGateway)
	mm.RegisterModule(RulerRing, t.initRulerRing, modules.UserInvisibleModule)
	mm.RegisterModule(Ruler, t.initRuler)
	mm.RegisterModule(RulerAPI, t.initRulerAPI, modules.UserInvisibleModule)
	mm.RegisterModule(AlertmanagerRing, t.initAlertmanagerRing, modules.UserInvisibleModule)
	mm.RegisterModule(Alertmanager, t.initAlertmanager)
	mm.RegisterModule(AlertmanagerAPI, t.initAlertmanagerAPI, modules.UserInvisibleModule)
	mm.RegisterModule(All, nil)
	for mod, targets := range deps {
		if err := mm.AddDependency(mod, targets...); err != nil {
			return nil, err
		}
	}
	return mm, nil
}

func (t *Vigil) initServer() (services.Service, error) {
	t.Cfg.Server.Registerer = t.Registerer
	t.Cfg.Server.Gatherer = t.Gatherer
	t.Cfg.Server.Log = t.Logger
	t.Cfg.Server.MetricsNamespace = "vigil"
	// dskit would mount pprof on the public router: /metrics is mounted
	// below instead, and pprof only on the admin listener.
	t.Cfg.Server.RegisterInstrumentation = false
	// Signals are handled by Vigil (see Start), which stops every module in
	// dependency order; the server stops last, in its service's stopping.
	t.Cfg.Server.SignalHandler = newNoSignals()
	srv, err := server.New(t.Cfg.Server)
	if err != nil {
		return nil, err
	}
	admin, err := newAdminServer(t.Cfg.Admin, t.Gatherer)
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	t.Server, t.admin = srv, admin
	grpc_health_v1.RegisterHealthServer(srv.GRPC, health.NewServer())
	ready := http.HandlerFunc(t.readyHandler)
	srv.HTTP.Path("/ready").Handler(ready)
	if t.Cfg.Auth.AuthMode == api.AuthNone {
		// With SigV4 the public port serves no metrics: their workspace
		// labels would tell any caller which workspaces exist. The admin
		// listener serves them in every mode.
		srv.HTTP.Path("/metrics").Handler(promhttp.HandlerFor(t.Gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	}
	admin.Handle("/ready", ready)
	admin.Handle("/config", http.HandlerFunc(t.configHandler))
	admin.Handle("/services", http.HandlerFunc(t.servicesHandler))
	return newServerService(srv, admin, t.otherServices), nil
}

func (t *Vigil) initMemberlistKV() (services.Service, error) {
	t.Cfg.Memberlist.Codecs = append(t.Cfg.Memberlist.Codecs, ring.GetCodec(), distributor.HATrackerCodec())
	dnsProvider := dns.NewProvider(dns.GolangResolverType, 0, t.Logger, prometheus.WrapRegistererWithPrefix("vigil_", t.Registerer))
	t.MemberlistKV = memberlist.NewKVInitService(&t.Cfg.Memberlist, t.Logger, dnsProvider, t.Registerer)
	return t.MemberlistKV, nil
}

// joinRing makes this process a member of a ring whose instances serve as
// soon as they join (every ring but the ingesters'), advertising its gRPC
// port. Each component's ring client and membership are made here, by
// ringmember, and handed to the component.
func (t *Vigil) joinRing(c ringmember.Config, name, key string, r ring.ReadRing) (*ringmember.ActiveMember, error) {
	port := t.Server.GRPCListenAddr().(*net.TCPAddr).Port
	return ringmember.Join(c, name, key, t.ringStore(), r, ringmember.Member{GRPCPort: port}, t.Registerer, t.Logger)
}

// ringStore is the key-value store every ring of this process shares.
func (t *Vigil) ringStore() ringmember.Store {
	return ringmember.Store{Memberlist: t.MemberlistKV.GetMemberlistKV}
}

func (t *Vigil) initIngesterRing() (services.Service, error) {
	r, err := ringmember.NewRing(t.Cfg.Ingester.Ring, ingester.RingName, ingester.RingKey, t.ringStore(), t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	t.IngesterRing = r
	t.admin.Handle("/ingester/ring", r)
	return r, nil
}

// initStorage creates the one object-storage client of the process,
// instrumented per operation, which every component that stores objects
// is handed.
func (t *Vigil) initStorage() (services.Service, error) {
	bkt, err := bucket.NewInstrumentedClient(t.Cfg.Storage, t.Cfg.DataDir, t.Registerer, t.Logger)
	if err != nil {
		return nil, fmt.Errorf("create object-storage client: %w", err)
	}
	t.Bucket = bkt
	return services.NewIdleService(nil, func(error) error { return bkt.Close() }), nil
}

func (t *Vigil) initWorkspaces() (services.Service, error) {
	t.Workspaces = controlplane.NewStore(t.Cfg.ControlPlane, t.Bucket)
	// A deleted workspace's data is marked for deletion at once: ingesters
	// remove their copies, the compactor its blocks after a delay (and
	// marks the data of any workspace it finds gone, should this fail).
	t.Workspaces.OnDeleted(func(id string) {
		if err := vtsdb.WriteWorkspaceDeletionMark(context.Background(), bucket.ForWorkspace(t.Bucket, id), time.Now()); err != nil {
			level.Warn(t.Logger).Log("msg", "cannot mark deleted workspace's data for deletion; the compactor will", "workspace", id, "err", err)
		}
	})
	// Accounts written before account indexes existed get theirs once.
	return services.NewIdleService(t.Workspaces.MigrateIndexes, nil), nil
}

func (t *Vigil) initRouter() (services.Service, error) {
	var keys auth.Keys
	var watch func(ctx context.Context)
	if t.Cfg.Auth.AuthMode == api.AuthSigV4 {
		fk, err := auth.LoadKeys(t.Cfg.Auth.CredentialsFile, t.Logger)
		if err != nil {
			return nil, err
		}
		keys = fk
		// The file is read again when it changes: keys and policies are
		// added and revoked without a restart.
		watch = func(ctx context.Context) { fk.Watch(ctx, 10*time.Second) }
	}
	trail, err := audit.Open(t.Cfg.Audit, t.Cfg.DataDir)
	if err != nil {
		return nil, err
	}
	var sink io.Writer
	if trail != nil {
		sink = trail
	}
	// One budget bounds the request memory of the whole process: the
	// bodies the front door reads and the pushes the distributor decodes.
	t.InflightBytes = inflight.NewBudget(int64(t.Cfg.Distributor.InstanceLimits.MaxInflightPushRequestsBytes))
	a, err := api.New(t.Cfg.Auth, t.Cfg.ControlPlane.Region, t.Workspaces, keys, sink, t.InflightBytes, t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	t.API = a
	// Every path not taken by the server's own endpoints (registered by any
	// module, in any order) belongs to the API.
	t.Server.HTTP.NotFoundHandler = t.API
	return services.NewBasicService(nil, func(ctx context.Context) error {
		if watch != nil {
			watch(ctx)
		} else {
			<-ctx.Done()
		}
		return nil
	}, func(error) error {
		if trail != nil {
			return trail.Close()
		}
		return nil
	}), nil
}

func (t *Vigil) initControlPlaneRing() (services.Service, error) {
	r, err := ringmember.NewRing(t.Cfg.ControlPlane.Ring, controlplane.RingName, controlplane.RingKey, t.ringStore(), t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	t.ControlPlaneRing = r
	t.admin.Handle("/controlplane/ring", r)
	return r, nil
}

// initAPI serves the control plane. Its replicas form the control-plane
// ring: each account's writes go to the replica the account hashes to,
// forwarded over the internal gRPC port when another replica received them.
func (t *Vigil) initAPI() (services.Service, error) {
	member, err := t.joinRing(t.Cfg.ControlPlane.Ring, controlplane.RingName, controlplane.RingKey, t.ControlPlaneRing)
	if err != nil {
		return nil, err
	}
	dial, err := t.Cfg.ControlPlane.Dialer()
	if err != nil {
		return nil, err
	}
	owners := controlplane.NewRingOwners(t.ControlPlaneRing, member.InstanceID(), dial, t.Registerer)
	// A workspace that set no retention has the compactor's.
	h := controlplane.NewHandler(t.Cfg.ControlPlane, t.Workspaces, owners, time.Duration(t.Cfg.Limits.Compactor.RetentionPeriod))
	h.SetRulerLimits(t.Overrides)
	h.SetAlertmanagerLimits(alertmanagerLimits{t.Overrides})
	t.API.RegisterControlPlane(h.Operations())
	t.API.BindRulesConfig(http.HandlerFunc(h.RulesConfig))
	// dskit serves its router on the gRPC port too (httpgrpc); the handler
	// answers only requests that came that way.
	t.Server.HTTP.PathPrefix(controlplane.InternalPrefix + "/").Handler(h.Internal(t.API.Operations()))
	member.AddListener(services.NewListener(nil, nil, nil, func(services.State) { _ = owners.Close() }, func(services.State, error) { _ = owners.Close() }))
	return member, nil
}

// ingesterPool returns a client pool for the ingester ring. The ingester of
// this process, when it runs one, is called directly.
func (t *Vigil) ingesterPool(component string) *ringclient.Pool {
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"component": component}, t.Registerer)
	return client.NewPool(t.Cfg.IngesterClient, t.IngesterRing, func(inst ring.InstanceDesc) client.Ingester {
		if t.Ingester != nil && inst.Id == t.Ingester.InstanceID() {
			return t.Ingester
		}
		return nil
	}, reg, t.Logger)
}

func poolGetter(pool *ringclient.Pool) func(ring.InstanceDesc) (client.Ingester, error) {
	return func(inst ring.InstanceDesc) (client.Ingester, error) { return client.Get(pool, inst) }
}

func (t *Vigil) initOverrides() (services.Service, error) {
	o, err := limits.NewOverrides(t.Cfg.Limits, nil)
	if err != nil {
		return nil, err
	}
	t.Overrides = o
	return limits.NewLoader(t.Cfg.Overrides, o, t.Logger), nil
}

func (t *Vigil) initDistributorRing() (services.Service, error) {
	r, err := ringmember.NewRing(t.Cfg.Distributor.Ring, distributor.RingName, distributor.RingKey, t.ringStore(), t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	t.DistributorRing = r
	t.admin.Handle("/distributor/ring", r)
	return r, nil
}

// initHATracker runs the election of high-availability replicas, shared by
// every distributor through the memberlist KV.
func (t *Vigil) initHATracker() (services.Service, error) {
	if !t.Cfg.Distributor.HATracker.Enable {
		return nil, nil
	}
	kv, err := t.MemberlistKV.GetMemberlistKV()
	if err != nil {
		return nil, fmt.Errorf("ha tracker: %w", err)
	}
	client, err := memberlist.NewClient(kv, distributor.HATrackerCodec())
	if err != nil {
		return nil, fmt.Errorf("ha tracker: %w", err)
	}
	h, err := distributor.NewHATracker(t.Cfg.Distributor.HATracker, client, t.Overrides, t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	t.HATracker = h
	t.admin.Handle("/distributor/ha-tracker", h)
	return h, nil
}

func (t *Vigil) initDistributor() (services.Service, error) {
	pool := t.ingesterPool("distributor")
	pushers := func(inst ring.InstanceDesc) (distributor.Pusher, error) { return client.Get(pool, inst) }
	// Each distributor is a member of the distributor ring, which counts
	// the distributors sharing each workspace's ingestion rate; a ruler's
	// distributor, which serves no sender, is not.
	var member services.Service
	if t.runs(Distributor) {
		m, err := t.joinRing(t.Cfg.Distributor.Ring, distributor.RingName, distributor.RingKey, t.DistributorRing)
		if err != nil {
			return nil, err
		}
		member = m
	}
	var replicas distributor.Replicas
	if t.HATracker != nil {
		replicas = t.HATracker
	}
	d, err := distributor.New(t.Cfg.Distributor, t.IngesterRing, pushers, t.Overrides, replicas, newRingMembers(t.DistributorRing), t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	t.Distributor = d
	t.API.RegisterPush(d, api.PushLimits{
		MaxRequestSizeBytes:      t.Cfg.Distributor.MaxRequestSizeBytes,
		MaxDecompressedSizeBytes: t.Cfg.Distributor.MaxDecompressedSizeBytes,
		MaxInflightPushRequests:  t.Cfg.Distributor.InstanceLimits.MaxInflightPushRequests,
	})
	// A workspace deleted through this process loses its metric series at
	// once; other processes drop them once it stops pushing.
	t.Workspaces.OnDeleted(d.ForgetWorkspace)
	if t.HATracker != nil {
		t.Workspaces.OnDeleted(t.HATracker.ForgetWorkspace)
	}
	if member == nil {
		return subservices.Service(d, pool), nil
	}
	return subservices.Service(member, d, pool), nil
}

func (t *Vigil) initIngester() (services.Service, error) {
	port := t.Server.GRPCListenAddr().(*net.TCPAddr).Port
	ing, err := ingester.New(t.Cfg.Ingester, t.Cfg.DataDir, port, t.Bucket, t.ringStore(), t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	ing.SetLabelSetLimits(workspaceLabelSets{t.Workspaces})
	// Series limits are per workspace and global: each ingester enforces
	// its share, from the healthy ingesters of the ring.
	ing.SetSeriesLimits(t.Overrides)
	ing.SetMetadataLimits(t.Overrides)
	ing.SetOutOfOrderWindows(workspaceOutOfOrder{t.Workspaces, t.Overrides})
	ing.SetRing(t.IngesterRing)
	gc, limit := t.Cfg.Ingester.ApplyRuntime()
	level.Info(t.Logger).Log("msg", "garbage collector of the ingester process", "gc_percent", gc, "memory_limit_bytes", limit, "note", "-1: set by the environment or none")
	t.Ingester = ing
	t.admin.Handle("/ingester/flush", http.HandlerFunc(ing.FlushHandler))
	ingester.NewGRPCServer(ing).Register(t.Server.GRPC)
	return ing, nil
}

func (t *Vigil) initQuerier() (services.Service, error) {
	pool := t.ingesterPool("querier")
	sgPool := sgclient.NewPool(t.Cfg.StoreGatewayClient, t.StoreGatewayRing, t.Registerer, t.Logger)
	store := querier.NewStore(t.Cfg.Querier, t.StoreGatewayRing, func(inst ring.InstanceDesc) (sgclient.StoreGateway, error) {
		// The store-gateway of this process, if it runs one, is called
		// directly.
		if g := t.StoreGateway; g != nil && inst.Id == g.InstanceID() {
			return g, nil
		}
		return sgclient.Get(sgPool, inst)
	}, t.Bucket)
	queryable := querier.NewQueryable(t.Cfg.Querier, t.IngesterRing, poolGetter(pool), store, t.Overrides)
	t.Queryable = queryable
	engine := querier.NewEngine(t.Cfg.Querier, t.Registerer, t.Logger)
	handler := querier.NewHandler(t.Cfg.Querier, engine, queryable, t.Overrides, queryLogger{t.QueryLogger}, t.Registerer, t.Logger)
	// With a query-frontend (this process's, or -querier.frontend-address)
	// the querier pulls its queries from the frontend, which owns the
	// public read routes. A querier alone without one serves them itself.
	addr := t.Cfg.FrontendWorker.FrontendAddress
	if addr == "" && t.runsQueryFrontend() {
		addr = t.Server.GRPCListenAddr().String()
	}
	if addr == "" {
		t.API.RegisterQuery(handler)
		return subservices.Service(pool, sgPool), nil
	}
	wcfg := t.Cfg.FrontendWorker
	wcfg.FrontendAddress = addr
	w, err := worker.New(wcfg, t.Cfg.Querier.MaxConcurrent, handler, t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	return subservices.Service(pool, sgPool, w), nil
}

// runsQueryFrontend tells whether this process runs the query-frontend.
func (t *Vigil) runsQueryFrontend() bool { return t.runs(QueryFrontend) }

// runs tells whether the process was asked to run module (or all): not
// only as another module's dependency.
func (t *Vigil) runs(module string) bool {
	for _, target := range t.Cfg.Target {
		if target == All || target == module {
			return true
		}
	}
	return false
}

// initQueryFrontend serves the public read routes: it splits and caches
// range queries and queues every read in a fair queue per workspace, from
// which the queriers pull them over the internal gRPC port.
func (t *Vigil) initQueryFrontend() (services.Service, error) {
	// A request may wait for a querier's slot, then run to the querier's
	// timeout; the frontend waits for it as long.
	limits := frontendLimits{Overrides: t.Overrides, outOfOrder: workspaceOutOfOrder{store: t.Workspaces, limits: t.Overrides}}
	f, err := frontend.New(t.Cfg.Frontend, limits, t.QueryLogger.Enabled, t.Cfg.Querier.Timeout+30*time.Second, t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	frontendpb.Register(t.Server.GRPC, f)
	t.API.RegisterQuery(f.Handler())
	return f, nil
}

// initQueryLog builds the query logger the querier calls after each query:
// it writes the queries a workspace's query logging configuration selects.
func (t *Vigil) initQueryLog() (services.Service, error) {
	l, err := querylog.New(t.Cfg.QueryLogging, t.Cfg.DataDir, workspaceQueryLogging{t.Workspaces}, t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	t.QueryLogger = l
	t.Workspaces.OnDeleted(l.Forget)
	return services.NewIdleService(nil, func(error) error { return l.Close() }), nil
}

// initVendedLogs builds the logger of AMP's vended logs: the ruler's and
// the alertmanager's WARN and ERROR events of each workspace with a
// logging configuration.
func (t *Vigil) initVendedLogs() (services.Service, error) {
	l, err := querylog.NewVended(t.Cfg.VendedLogs, t.Cfg.DataDir, workspaceLogging{t.Workspaces}, t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	t.VendedLogs = l
	t.Workspaces.OnDeleted(l.Forget)
	return services.NewIdleService(nil, func(error) error { return l.Close() }), nil
}

func (t *Vigil) initStoreGatewayRing() (services.Service, error) {
	// A query needs one healthy replica of each block, not a quorum.
	r, err := ringmember.NewRingWithStrategy(t.Cfg.StoreGateway.Ring, storegateway.RingName, storegateway.RingKey, t.ringStore(),
		ring.NewIgnoreUnhealthyInstancesReplicationStrategy(), t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	t.StoreGatewayRing = r
	t.admin.Handle("/store-gateway/ring", r)
	return r, nil
}

func (t *Vigil) initStoreGateway() (services.Service, error) {
	member, err := t.joinRing(t.Cfg.StoreGateway.Ring, storegateway.RingName, storegateway.RingKey, t.StoreGatewayRing)
	if err != nil {
		return nil, err
	}
	g, err := storegateway.New(t.Cfg.StoreGateway, t.Cfg.DataDir, t.Bucket, t.StoreGatewayRing, member, t.Overrides, t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	storegatewaypb.RegisterStoreGatewayServer(t.Server.GRPC, g)
	t.StoreGateway = g
	return g, nil
}

func (t *Vigil) initCompactor() (services.Service, error) {
	// The compactor is the ring's only reader: it runs the ring client.
	r, err := ringmember.NewRing(t.Cfg.Compactor.Ring, compactor.RingName, compactor.RingKey, t.ringStore(), t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	member, err := t.joinRing(t.Cfg.Compactor.Ring, compactor.RingName, compactor.RingKey, r)
	if err != nil {
		return nil, err
	}
	c, err := compactor.New(t.Cfg.Compactor, t.Cfg.DataDir, t.Bucket, r, member, workspaceRetention{t.Overrides, t.Workspaces}, workspaceExists{t.Workspaces}, t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	t.Compactor = c
	t.admin.Handle("/compactor/ring", c.Ring())
	return c, nil
}
