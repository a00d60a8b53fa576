package vigil

import (
	"context"
	"net"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

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
	port := t.Server.GRPCListenAddr().(*net.TCPAddr).Port
	lc, err := ringmember.NewLifecycler(t.Cfg.Ruler.Ring, ruler.RingName, ruler.RingKey, t.ringStore(), ringmember.Member{GRPCPort: port}, t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	member := ringmember.NewActiveMember(lc, t.RulerRing)
	// The ruler's own engine: its queries neither wait for nor count
	// against the query API's.
	engine := querier.NewEngine(t.Cfg.Querier, prometheus.WrapRegistererWithPrefix("vigil_ruler_", t.Registerer), t.Logger)
	rl := ruler.New(t.Cfg.Ruler, rulesFiles{t.Workspaces}, t.Overrides, engine, t.Queryable, t.Distributor, t.RulerRing, member, t.Registerer, t.Logger)
	t.Ruler = rl
	return rl, nil
}

// rulesFiles gives the ruler every active workspace's rule groups
// namespaces.
type rulesFiles struct{ store *controlplane.Store }

func (r rulesFiles) RulesFiles(ctx context.Context) (map[string][]ruler.RulesFile, error) {
	all, err := r.store.ActiveResources(ctx, controlplane.RuleGroupsNamespaces)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]ruler.RulesFile, len(all))
	for ws, rs := range all {
		for _, res := range rs {
			out[ws] = append(out[ws], ruler.RulesFile{Name: res.Name, Data: res.Data})
		}
	}
	return out, nil
}
