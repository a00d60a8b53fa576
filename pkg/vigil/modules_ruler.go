package vigil

import (
	"context"
	"sync"

	"github.com/grafana/dskit/httpgrpc"
	httpgrpcserver "github.com/grafana/dskit/httpgrpc/server"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/controlplane"
	"github.com/vigil-metrics/vigil/pkg/querier"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/ruler"
)

func (t *Vigil) initRulerRing() (services.Service, error) {
	// A group belongs to the first healthy ruler of its token.
	r, err := ringmember.NewRingWithStrategy(t.Cfg.Ruler.Ring, ruler.RingName, ruler.RingKey, t.ringStore(),
		ring.NewIgnoreUnhealthyInstancesReplicationStrategy(), t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	t.RulerRing = r
	t.admin.Handle("/ruler/ring", r)
	return r, nil
}

func (t *Vigil) initRuler() (services.Service, error) {
	member, err := t.joinRing(t.Cfg.Ruler.Ring, ruler.RingName, ruler.RingKey, t.RulerRing)
	if err != nil {
		return nil, err
	}
	// The ruler's own engine: its queries neither wait for nor count
	// against the query API's.
	engine := querier.NewEngine(t.Cfg.Querier, prometheus.WrapRegistererWithPrefix("vigil_ruler_", t.Registerer), t.Logger)
	rl := ruler.New(t.Cfg.Ruler, newRulesFiles(t.Workspaces), newWorkspaceRuleQueryOffset(t.Workspaces, t.Overrides), engine, t.Queryable, t.Distributor, t.RulerRing, member, t.Registerer, t.Logger)
	t.Ruler = rl
	// Alerts go to the workspaces' Alertmanagers of this cluster, unless
	// -ruler.alertmanager-url names another.
	rl.SendAlertsTo(t.AlertmanagerAPI)
	rl.SetVendedLogs(t.VendedLogs)
	// dskit serves its router on the gRPC port too (httpgrpc): the rules
	// API of every replica reads this ruler's groups there.
	t.Server.HTTP.PathPrefix(ruler.InternalPrefix + "/").Handler(rl.Internal())
	return rl, nil
}

// initRulerAPI serves /api/v1/rules and /api/v1/alerts from every ruler of
// the ring; the ruler of this process, when it runs one, is asked directly.
func (t *Vigil) initRulerAPI() (services.Service, error) {
	dial, err := t.Cfg.Ruler.Dialer()
	if err != nil {
		return nil, err
	}
	client, conns := t.httpgrpcClients(dial, func() string {
		if rl := t.Ruler; rl != nil {
			return rl.InstanceID()
		}
		return ""
	})
	t.API.RegisterRules(ruler.NewAPI(t.RulerRing, client, t.Logger))
	return services.NewIdleService(nil, func(error) error { return conns.Close() }), nil
}

// httpgrpcClients returns how this process reaches the members of a ring
// on their internal gRPC port (dskit's httpgrpc): the member of this
// process (local's ID) directly, the others over connections dialled by
// dial, kept in the Conns returned.
func (t *Vigil) httpgrpcClients(dial func(addr string) (*grpc.ClientConn, error), local func() string) (func(ring.InstanceDesc) (func(context.Context, *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error), error), *ringmember.Conns) {
	conns := ringmember.NewConns(dial)
	return func(inst ring.InstanceDesc) (func(context.Context, *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error), error) {
		if id := local(); id != "" && inst.Id == id {
			return httpgrpcserver.NewServer(t.Server.HTTP).Handle, nil
		}
		c, err := conns.Get(inst.Addr)
		if err != nil {
			return nil, err
		}
		client := httpgrpc.NewHTTPClient(c)
		return func(ctx context.Context, req *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error) {
			return client.Handle(ctx, req)
		}, nil
	}, conns
}

// rulesFiles gives the ruler every active workspace's rule groups
// namespaces. It keeps the documents it read, and reads again only those
// whose version in their workspace's index changed.
type rulesFiles struct {
	store *controlplane.Store

	mu    sync.Mutex
	known map[string]ruler.RulesFile // by workspace and name
}

func newRulesFiles(store *controlplane.Store) *rulesFiles {
	return &rulesFiles{store: store, known: map[string]ruler.RulesFile{}}
}

func (r *rulesFiles) RulesFiles(ctx context.Context) (map[string][]ruler.RulesFile, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	workspaces, err := r.store.ActiveWorkspacesWith(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]ruler.RulesFile{}
	seen := map[string]bool{}
	for _, ws := range workspaces {
		versions, err := r.store.ResourceVersions(ctx, controlplane.RuleGroupsNamespaces, ws)
		if err != nil {
			return nil, err
		}
		for name, version := range versions {
			key := ws + "\x00" + name
			f, ok := r.known[key]
			if !ok || f.Revision != version {
				res, err := r.store.ReadResource(ctx, controlplane.RuleGroupsNamespaces, ws, name)
				if apierror.CauseOf(err) == apierror.NotFound {
					continue // deleted since the index was read
				}
				if err != nil {
					return nil, err
				}
				f = ruler.RulesFile{Name: res.Name, Data: res.Data, Revision: res.Version()}
				r.known[key] = f
			}
			seen[key] = true
			out[ws] = append(out[ws], f)
		}
	}
	for key := range r.known {
		if !seen[key] {
			delete(r.known, key)
		}
	}
	return out, nil
}
