package vigil

// The adapters through which components read what the control plane keeps
// about workspaces, each the narrow interface its consumer declares.

import (
	"context"
	"sync"
	"time"

	"github.com/grafana/dskit/ring"

	"github.com/vigil-metrics/vigil/pkg/alertmanager/definition"
	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/controlplane"
	"github.com/vigil-metrics/vigil/pkg/ingester"
	"github.com/vigil-metrics/vigil/pkg/limits"
	"github.com/vigil-metrics/vigil/pkg/querier"
	"github.com/vigil-metrics/vigil/pkg/querylog"
)

// workspaceExists tells the compactor which workspaces the control plane
// still has.
type workspaceExists struct{ store *controlplane.Store }

func (w workspaceExists) Exists(ctx context.Context, id string) (bool, error) {
	_, err := w.store.Get(ctx, id)
	if apierror.CauseOf(err) == apierror.NotFound {
		return false, nil
	}
	return err == nil, err
}

// workspaceRetention is a workspace's retention: the retentionPeriodInDays
// of its configuration (UpdateWorkspaceConfiguration) when set, otherwise
// the limits'.
type workspaceRetention struct {
	limits *limits.Overrides
	store  *controlplane.Store
}

func (w workspaceRetention) RetentionPeriod(id string) time.Duration {
	cfg, err := w.store.Configuration(context.Background(), id)
	switch {
	case apierror.CauseOf(err) == apierror.NotFound:
		// A deleted workspace's data goes with the workspace deletion mark.
	case err != nil:
		// The configuration cannot be read: a shorter default must not
		// delete what a longer configured retention keeps. Nothing is
		// marked this round.
		return 0
	case cfg != nil && cfg.RetentionPeriodInDays > 0:
		return time.Duration(cfg.RetentionPeriodInDays) * 24 * time.Hour
	}
	return w.limits.RetentionPeriod(id)
}

// workspaceLabelSets gives ingesters the limitsPerLabelSet of each
// workspace's configuration.
type workspaceLabelSets struct{ store *controlplane.Store }

func (w workspaceLabelSets) LabelSetLimits(ctx context.Context, id string) ([]ingester.LabelSetLimit, error) {
	cfg, err := w.store.Configuration(ctx, id)
	if err != nil || cfg == nil {
		if apierror.CauseOf(err) == apierror.NotFound {
			err = nil
		}
		return nil, err
	}
	out := make([]ingester.LabelSetLimit, 0, len(cfg.LimitsPerLabelSet))
	for _, l := range cfg.LimitsPerLabelSet {
		out = append(out, ingester.LabelSetLimit{Labels: l.LabelSet, MaxSeries: l.Limits.MaxSeries})
	}
	return out, nil
}

// workspaceOutOfOrder gives ingesters each workspace's out-of-order
// window: outOfOrderTimeWindowInSeconds of its configuration when set,
// otherwise the limits' (-ingester.out-of-order-time-window).
type workspaceOutOfOrder struct {
	store  *controlplane.Store
	limits *limits.Overrides
}

func (w workspaceOutOfOrder) OutOfOrderTimeWindow(ctx context.Context, id string) (time.Duration, error) {
	cfg, err := w.store.Configuration(ctx, id)
	if err != nil && apierror.CauseOf(err) != apierror.NotFound {
		return 0, err
	}
	if cfg != nil && cfg.OutOfOrderTimeWindowInSeconds != nil {
		return time.Duration(*cfg.OutOfOrderTimeWindowInSeconds) * time.Second, nil
	}
	return w.limits.OutOfOrderTimeWindow(id), nil
}

// workspaceRuleQueryOffset gives the ruler each workspace's rule query
// offset: ruleQueryOffsetInSeconds of its configuration when set, otherwise
// the limits' (-ruler.query-offset). The configuration is read from the
// control plane's status cache at each evaluation; while it cannot be read,
// the value read last stands, so that a rule's window does not jump.
type workspaceRuleQueryOffset struct {
	store interface {
		Configuration(ctx context.Context, id string) (*controlplane.Configuration, error)
	}
	limits interface{ RuleQueryOffset(string) time.Duration }

	mu   sync.Mutex
	last map[string]int // the offsets read last, of the workspaces that set one
}

func newWorkspaceRuleQueryOffset(store *controlplane.Store, lim *limits.Overrides) *workspaceRuleQueryOffset {
	return &workspaceRuleQueryOffset{store: store, limits: lim, last: map[string]int{}}
}

func (w *workspaceRuleQueryOffset) RuleQueryOffset(id string) time.Duration {
	cfg, err := w.store.Configuration(context.Background(), id)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil && cfg != nil && cfg.RuleQueryOffsetInSeconds != nil:
		w.last[id] = *cfg.RuleQueryOffsetInSeconds
	case err == nil || apierror.CauseOf(err) == apierror.NotFound:
		delete(w.last, id)
	}
	if secs, ok := w.last[id]; ok {
		return time.Duration(secs) * time.Second
	}
	return w.limits.RuleQueryOffset(id)
}

// workspaceQueryLogging gives the query logger each workspace's query
// logging configuration (CreateQueryLoggingConfiguration), from the
// control plane's status cache.
type workspaceQueryLogging struct{ store *controlplane.Store }

func (w workspaceQueryLogging) QueryLogging(ctx context.Context, id string) (querylog.Settings, bool, error) {
	cfg, err := w.store.QueryLogging(ctx, id)
	if apierror.CauseOf(err) == apierror.NotFound {
		return querylog.Settings{}, false, nil
	}
	if err != nil {
		return querylog.Settings{}, false, err
	}
	if cfg == nil || cfg.Status != controlplane.StatusActive || len(cfg.Destinations) == 0 {
		return querylog.Settings{}, false, nil
	}
	d := cfg.Destinations[0] // AMP's model: exactly one
	return querylog.Settings{LogGroupARN: d.CloudWatchLogs.LogGroupARN, QSPThreshold: d.Filters.QSPThreshold}, true, nil
}

// workspaceLogging gives the vended logs each workspace's logging
// configuration (CreateLoggingConfiguration).
type workspaceLogging struct{ store *controlplane.Store }

func (w workspaceLogging) QueryLogging(ctx context.Context, id string) (querylog.Settings, bool, error) {
	res, err := w.store.ReadResource(ctx, controlplane.LoggingConfigurations, id, controlplane.ConfigurationName)
	if apierror.CauseOf(err) == apierror.NotFound {
		return querylog.Settings{}, false, nil
	}
	if err != nil {
		return querylog.Settings{}, false, err
	}
	return querylog.Settings{LogGroupARN: string(res.Data)}, true, nil
}

// ringMembers counts the healthy members of a ring for the distributors'
// shares of the ingestion rate, read at most once a second.
type ringMembers struct {
	r      ring.ReadRing
	mu     sync.Mutex
	n      int
	readAt time.Time
}

func newRingMembers(r ring.ReadRing) *ringMembers { return &ringMembers{r: r} }

// HealthyDistributors is the number of healthy members, at least one (this
// one, about to join or unreadable ring).
func (m *ringMembers) HealthyDistributors() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now := time.Now(); now.Sub(m.readAt) >= time.Second {
		m.readAt = now
		m.n = 1
		if rs, err := m.r.GetAllHealthy(ring.Reporting); err == nil {
			m.n = max(1, len(rs.Instances))
		}
	}
	return m.n
}

// queryLogger hands the querier's evaluated queries to the query log.
type queryLogger struct{ l *querylog.Logger }

func (q queryLogger) LogQuery(ctx context.Context, workspace string, lq querier.LoggedQuery) {
	q.l.Log(ctx, workspace, querylog.Entry{
		Query: lq.Query, Start: lq.Start, End: lq.End, Step: lq.Step,
		SamplesProcessed: lq.SamplesProcessed, Series: lq.Series, Duration: lq.Duration, UserAgent: lq.UserAgent,
	})
}

// frontendLimits are the limits the query-frontend reads, with each
// workspace's out-of-order window as its configuration sets it.
type frontendLimits struct {
	*limits.Overrides
	outOfOrder workspaceOutOfOrder
}

func (f frontendLimits) OutOfOrderTimeWindow(workspace string) time.Duration {
	w, err := f.outOfOrder.OutOfOrderTimeWindow(context.Background(), workspace)
	if err != nil {
		return f.Overrides.OutOfOrderTimeWindow(workspace)
	}
	return w
}

// amDefinitionLimits are the definition's checks of a workspace's
// alertmanager limits.
func amDefinitionLimits(l limits.AlertmanagerLimits) (definition.Limits, *definition.Egress) {
	return definition.Limits{
			MaxSizeBytes: l.MaxDefinitionSizeBytes, MaxTemplates: l.MaxTemplates, MaxInhibitRules: l.MaxInhibitRules,
			MaxRouteNodes: l.MaxRouteNodes, MaxRepeatInterval: l.MaxRepeatInterval,
		}, &definition.Egress{
			BlockPrivate: l.ReceiversBlockPrivateAddresses, BlockCIDRs: l.BlockedCIDRs(), AllowSNSAPIURL: l.SNSAllowAPIURL,
			AllowSNSProcessCredentials: l.SNSAllowProcessCredentials,
		}
}
