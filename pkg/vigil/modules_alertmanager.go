package vigil

import (
	"context"
	"sync"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"

	"github.com/vigil-metrics/vigil/pkg/alertmanager"
	"github.com/vigil-metrics/vigil/pkg/alertmanager/definition"
	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/controlplane"
	"github.com/vigil-metrics/vigil/pkg/limits"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
)

func (t *Vigil) initAlertmanagerRing() (services.Service, error) {
	// A workspace runs on every healthy alertmanager of its replicas: one
	// is enough to receive its alerts and notify.
	r, err := ringmember.NewRingWithStrategy(t.Cfg.Alertmanager.Ring, alertmanager.RingName, alertmanager.RingKey, t.ringStore(),
		ring.NewIgnoreUnhealthyInstancesReplicationStrategy(), t.Registerer, t.Logger)
	if err != nil {
		return nil, err
	}
	t.AlertmanagerRing = r
	t.admin.Handle("/alertmanager/ring", r)
	return r, nil
}

// alertmanagerClient returns how this process reaches an alertmanager of
// the ring: the one of this process directly, the others over gRPC.
func (t *Vigil) alertmanagerClient() (func(ring.InstanceDesc) (alertmanager.Client, error), *ringmember.Conns, error) {
	dial, err := t.Cfg.Alertmanager.Dialer()
	if err != nil {
		return nil, nil, err
	}
	client, conns := t.httpgrpcClients(dial, func() string {
		if am := t.Alertmanager; am != nil {
			return am.InstanceID()
		}
		return ""
	})
	return client, conns, nil
}

func (t *Vigil) initAlertmanager() (services.Service, error) {
	member, err := t.joinRing(t.Cfg.Alertmanager.Ring, alertmanager.RingName, alertmanager.RingKey, t.AlertmanagerRing)
	if err != nil {
		return nil, err
	}
	client, conns, err := t.alertmanagerClient()
	if err != nil {
		return nil, err
	}
	am := alertmanager.New(t.Cfg.Alertmanager, newDefinitions(t.Workspaces), alertmanagerLimits{t.Overrides}, t.AlertmanagerRing, member,
		t.Bucket, client, t.Registerer, t.Logger)
	am.SetVendedLogs(t.VendedLogs)
	t.Alertmanager = am
	// dskit serves its router on the gRPC port too (httpgrpc): the API of
	// every process, and the other replicas, reach this one there.
	t.Server.HTTP.PathPrefix(alertmanager.InternalPrefix + "/").Handler(am.Internal())
	am.AddListener(services.NewListener(nil, nil, nil, func(services.State) { _ = conns.Close() }, func(services.State, error) { _ = conns.Close() }))
	return am, nil
}

// initAlertmanagerAPI serves the Alertmanager v2 API of every workspace
// from its replicas.
func (t *Vigil) initAlertmanagerAPI() (services.Service, error) {
	client, conns, err := t.alertmanagerClient()
	if err != nil {
		return nil, err
	}
	t.AlertmanagerAPI = alertmanager.NewAPI(t.AlertmanagerRing, client, t.Registerer, t.Logger)
	t.API.RegisterAlertmanager(t.AlertmanagerAPI)
	return services.NewIdleService(nil, func(error) error { return conns.Close() }), nil
}

// alertmanagerLimits gives the alertmanager each workspace's limits.
type alertmanagerLimits struct{ o *limits.Overrides }

func (a alertmanagerLimits) DefinitionChecks(workspace string) (definition.Limits, *definition.Egress) {
	return amDefinitionLimits(a.o.AlertmanagerLimits(workspace))
}

func (a alertmanagerLimits) AlertmanagerLimits(workspace string) limits.AlertmanagerLimits {
	return a.o.AlertmanagerLimits(workspace)
}

// definitions gives the alertmanager every active workspace's alert
// manager definition. It keeps the documents it read, and reads again only
// those whose version changed.
type definitions struct {
	store *controlplane.Store

	mu    sync.Mutex
	known map[string]alertmanager.Definition
}

func newDefinitions(store *controlplane.Store) *definitions {
	return &definitions{store: store, known: map[string]alertmanager.Definition{}}
}

func (d *definitions) Definitions(ctx context.Context) (map[string]alertmanager.Definition, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	workspaces, err := d.store.ActiveWorkspacesWith(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]alertmanager.Definition{}
	for _, ws := range workspaces {
		versions, err := d.store.ResourceVersions(ctx, controlplane.AlertManagerDefinitions, ws)
		if err != nil {
			return nil, err
		}
		version, ok := versions[controlplane.DefinitionName]
		if !ok {
			continue
		}
		def, ok := d.known[ws]
		if !ok || def.Version != version {
			res, err := d.store.ReadResource(ctx, controlplane.AlertManagerDefinitions, ws, controlplane.DefinitionName)
			if apierror.CauseOf(err) == apierror.NotFound {
				continue // deleted since the index was read
			}
			if err != nil {
				return nil, err
			}
			def = alertmanager.Definition{Data: res.Data, Version: res.Version()}
			d.known[ws] = def
		}
		out[ws] = def
	}
	for ws := range d.known {
		if _, ok := out[ws]; !ok {
			delete(d.known, ws)
		}
	}
	return out, nil
}
