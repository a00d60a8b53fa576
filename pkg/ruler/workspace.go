package ruler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-metrics/vigil/pkg/logging"
	"github.com/vigil-metrics/vigil/pkg/promqlshape"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Namespace is one rule groups namespace of a workspace: its name and the
// groups of its rules file this ruler evaluates.
type Namespace struct {
	Name   string
	Groups []rulefmt.RuleGroup
}

// memoryLoader hands the rules manager the groups of each namespace by its
// name, in place of a file: the namespace's name is the "file" of its
// groups in the rules and alerts APIs, as Cortex and Mimir show it.
type memoryLoader struct {
	parser parser.Parser

	mu         sync.Mutex
	namespaces map[string]*rulefmt.RuleGroups
}

func (l *memoryLoader) Load(identifier string, _ bool, _ model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	groups, ok := l.namespaces[identifier]
	if !ok {
		return nil, []error{fmt.Errorf("no rule groups namespace %q", identifier)}
	}
	return groups, nil
}

func (l *memoryLoader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }

// workspaceRules evaluates the groups of one workspace this ruler owns with
// Prometheus's rules manager: queries read the workspace's series, and
// recording rules' samples are pushed into it.
type workspaceRules struct {
	manager    *rules.Manager
	metrics    *rules.Metrics // the workspace's own, read by usage
	loader     *memoryLoader
	cancel     context.CancelFunc
	stopNotify func()
}

// workspaceOptions are what every workspace's rules manager shares.
type workspaceOptions struct {
	engine    promql.QueryEngine
	queryable storage.Queryable
	pusher    Pusher
	// notify returns how a workspace's alerts are sent, and what stops it.
	notify          func(workspace string) (rules.NotifyFunc, func())
	interval        time.Duration
	queryOffset     func(workspace string) time.Duration
	outageTolerance time.Duration
	forGracePeriod  time.Duration
	resendDelay     time.Duration
	logger          *slog.Logger
	// vended takes a workspace's WARN and ERROR events (AMP's vended
	// logs; nil: none).
	vended VendedLogs
}

// VendedLogs writes a workspace's WARN and ERROR events where its logging
// configuration says (AMP's vended logs).
type VendedLogs interface {
	Event(workspace, component, level, msg string)
}

// workspaceLogger is the logger of a workspace's rules manager: its WARN
// and ERROR events (rule evaluation failures among them) also go to the
// workspace's vended logs.
func (o workspaceOptions) workspaceLogger(workspace string) *slog.Logger {
	l := o.logger.With("workspace", workspace)
	if o.vended == nil {
		return l
	}
	return slog.New(logging.Events(l.Handler(), func(lvl, msg string) { o.vended.Event(workspace, "ruler", lvl, msg) }))
}

// boundedQueries refuses, before they are parsed, queries nested or chained
// beyond a rule expression's bounds. Rules' own expressions were checked
// when their file was stored; the queries their templates build ({{ query
// ... }}, possibly from alerts' labels) arrive here at every evaluation,
// and Prometheus's parser takes time growing with the square of a chain.
func boundedQueries(q rules.QueryFunc) rules.QueryFunc {
	return func(ctx context.Context, expr string, t time.Time) (promql.Vector, error) {
		if promqlshape.RuleTooComplex(expr) {
			return nil, fmt.Errorf("query refused: it nests more than %d levels or holds more than %d binary operators", promqlshape.MaxRuleDepth, promqlshape.MaxRuleOperators)
		}
		return q(ctx, expr, t)
	}
}

func newWorkspaceRules(workspace string, o workspaceOptions) *workspaceRules {
	ctx, cancel := context.WithCancel(tenant.WithID(context.Background(), workspace))
	loader := &memoryLoader{parser: parser.NewParser(parser.Options{}), namespaces: map[string]*rulefmt.RuleGroups{}}
	// The rules manager calls its NotifyFunc at every evaluation of an
	// alerting rule: without an Alertmanager, alerts go nowhere.
	notify := rules.NotifyFunc(func(context.Context, string, ...*rules.Alert) {})
	stopNotify := func() {}
	if o.notify != nil {
		if n, stop := o.notify(workspace); n != nil {
			notify, stopNotify = n, stop
		}
	}
	metrics := rules.NewGroupMetrics(nil)
	m := rules.NewManager(&rules.ManagerOptions{
		Metrics:                metrics,
		NameValidationScheme:   model.UTF8Validation,
		QueryFunc:              boundedQueries(rules.EngineQueryFunc(o.engine, o.queryable)),
		NotifyFunc:             notify,
		Context:                ctx,
		AppendableV2:           pushAppendable{pusher: o.pusher, workspace: workspace},
		Queryable:              o.queryable,
		Logger:                 o.workspaceLogger(workspace),
		OutageTolerance:        o.outageTolerance,
		ForGracePeriod:         o.forGracePeriod,
		ResendDelay:            o.resendDelay,
		GroupLoader:            loader,
		DefaultRuleQueryOffset: func() time.Duration { return o.queryOffset(workspace) },
		// A group handed over from another ruler restores its alerts' for
		// state (ALERTS_FOR_STATE), whenever it arrives.
		RestoreNewRuleGroups: true,
		Parser:               loader.parser,
	})
	go m.Run()
	return &workspaceRules{manager: m, metrics: metrics, loader: loader, cancel: cancel, stopNotify: stopNotify}
}

// update makes the manager evaluate exactly these namespaces' groups; a
// group unchanged keeps its state (pending alerts, its schedule).
func (w *workspaceRules) update(namespaces []Namespace, interval time.Duration) error {
	w.loader.mu.Lock()
	w.loader.namespaces = map[string]*rulefmt.RuleGroups{}
	names := make([]string, 0, len(namespaces))
	for _, ns := range namespaces {
		w.loader.namespaces[ns.Name] = &rulefmt.RuleGroups{Groups: ns.Groups}
		names = append(names, ns.Name)
	}
	w.loader.mu.Unlock()
	return w.manager.Update(interval, names, labels.EmptyLabels(), "", nil)
}

// owned returns the namespaces the manager evaluates, with only the groups
// keep accepts, and how many it left out.
func (w *workspaceRules) owned(keep func(namespace, group string) bool) ([]Namespace, int) {
	w.loader.mu.Lock()
	defer w.loader.mu.Unlock()
	var out []Namespace
	dropped := 0
	for name, rgs := range w.loader.namespaces {
		ns := Namespace{Name: name}
		for _, g := range rgs.Groups {
			if keep(name, g.Name) {
				ns.Groups = append(ns.Groups, g)
			} else {
				dropped++
			}
		}
		if len(ns.Groups) > 0 {
			out = append(out, ns)
		}
	}
	return out, dropped
}

// stop ends every evaluation of the workspace.
func (w *workspaceRules) stop() {
	w.cancel() // ends the evaluations in flight, which Stop waits for
	w.manager.Stop()
	w.stopNotify()
}
