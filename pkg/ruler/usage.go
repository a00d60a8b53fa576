package ruler

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// usage exposes each workspace's rule evaluations, failures and missed
// iterations (AMP's RuleEvaluations, RuleEvaluationFailures and
// RuleGroupIterationsMissed) by workspace and rule group. Every workspace's
// rules manager counts into metrics of its own, registered nowhere; these
// are read from them when scraped, so that a workspace's series go with
// its manager.
type usage struct {
	rl                            *Ruler
	evaluations, failures, missed *prometheus.Desc
}

func newUsage(rl *Ruler) *usage {
	labels := []string{"workspace", "rule_group"}
	return &usage{
		rl:          rl,
		evaluations: prometheus.NewDesc("vigil_ruler_rule_evaluations_total", "Rule evaluations (AMP's RuleEvaluations), by workspace and rule group (namespace;group).", labels, nil),
		failures:    prometheus.NewDesc("vigil_ruler_rule_evaluation_failures_total", "Rule evaluations that failed (AMP's RuleEvaluationFailures), by workspace and rule group.", labels, nil),
		missed:      prometheus.NewDesc("vigil_ruler_rule_group_iterations_missed_total", "Rule group evaluations missed because the one before was still running (AMP's RuleGroupIterationsMissed), by workspace and rule group.", labels, nil),
	}
}

func (u *usage) Describe(ch chan<- *prometheus.Desc) {
	ch <- u.evaluations
	ch <- u.failures
	ch <- u.missed
}

func (u *usage) Collect(ch chan<- prometheus.Metric) {
	for ws, w := range u.rl.current() {
		m := w.metrics
		relabel(ch, u.evaluations, ws, m.EvalTotal)
		relabel(ch, u.failures, ws, m.EvalFailures)
		relabel(ch, u.missed, ws, m.IterationsMissed)
	}
}

// relabel sends the counters of vec (labelled rule_group) as desc's, with
// the workspace.
func relabel(ch chan<- prometheus.Metric, desc *prometheus.Desc, workspace string, vec *prometheus.CounterVec) {
	in := make(chan prometheus.Metric, 16)
	go func() {
		vec.Collect(in)
		close(in)
	}()
	for m := range in {
		var pb dto.Metric
		if m.Write(&pb) != nil || pb.Counter == nil {
			continue
		}
		group := ""
		for _, l := range pb.Label {
			if l.GetName() == "rule_group" {
				group = l.GetValue()
			}
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, pb.Counter.GetValue(), workspace, group)
	}
}
