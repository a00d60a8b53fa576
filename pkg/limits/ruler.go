package limits

import (
	"flag"
	"time"
)

// RulerLimits bound a workspace's rules: checked when a rules file is
// stored, and by the ruler.
type RulerLimits struct {
	// AMP quota: rules per workspace, 2,000.
	MaxRulesPerWorkspace int `yaml:"ruler_max_rules_per_workspace"`
	// Rule groups namespaces per workspace (Vigil's bound: AMP states no
	// quota of its own).
	MaxRuleGroupsNamespacesPerWorkspace int `yaml:"ruler_max_rule_groups_namespaces_per_workspace"`
	// AMP quota: rule evaluation interval, at least 30 s.
	MinEvaluationInterval time.Duration `yaml:"ruler_min_evaluation_interval"`
	// AMP quota: rule groups namespace definition file size, 1 MB.
	MaxRulesFileSizeBytes int `yaml:"ruler_max_rules_file_size_bytes"`
	// How far back from its evaluation time a rule queries (Prometheus's
	// rule_query_offset), for data that arrives late.
	RuleQueryOffset time.Duration `yaml:"ruler_query_offset"`
}

func (l *RulerLimits) registerFlags(f *flag.FlagSet) {
	f.IntVar(&l.MaxRulesPerWorkspace, "ruler.max-rules-per-workspace", 2000, "Most recording and alerting rules a workspace's rule groups namespaces may hold together. AMP quota: 2,000 rules per workspace. 0: no limit.")
	f.IntVar(&l.MaxRuleGroupsNamespacesPerWorkspace, "ruler.max-rule-groups-namespaces-per-workspace", 100, "Most rule groups namespaces a workspace may hold (Vigil's bound; AMP states no quota). Every ruler reads them all every -ruler.poll-interval. 0: no limit.")
	f.DurationVar(&l.MinEvaluationInterval, "ruler.min-evaluation-interval", 30*time.Second, "Shortest evaluation interval a rule group may set. AMP quota: 30 s.")
	f.IntVar(&l.MaxRulesFileSizeBytes, "ruler.max-rules-file-size-bytes", 1<<20, "Largest rules file a rule groups namespace may hold, in bytes. AMP quota: 1 MB per rule groups namespace definition file.")
	f.DurationVar(&l.RuleQueryOffset, "ruler.query-offset", 0, "How far back from its evaluation time each rule queries, for samples that arrive late (Prometheus's rule_query_offset). A workspace's configuration (ruleQueryOffsetInSeconds of UpdateWorkspaceConfiguration) wins over this, and a group's query_offset over both.")
}

// RuleQueryOffset is how far back the workspace's rules query.
func (o *Overrides) RuleQueryOffset(workspace string) time.Duration {
	return o.get(workspace).Ruler.RuleQueryOffset
}

// MaxRulesPerWorkspace is the workspace's rules quota (0: none).
func (o *Overrides) MaxRulesPerWorkspace(workspace string) int {
	return o.get(workspace).Ruler.MaxRulesPerWorkspace
}

// MaxRuleGroupsNamespacesPerWorkspace bounds the workspace's namespaces
// (0: none).
func (o *Overrides) MaxRuleGroupsNamespacesPerWorkspace(workspace string) int {
	return o.get(workspace).Ruler.MaxRuleGroupsNamespacesPerWorkspace
}

// MinEvaluationInterval is the shortest rule evaluation interval of the
// workspace.
func (o *Overrides) MinEvaluationInterval(workspace string) time.Duration {
	return o.get(workspace).Ruler.MinEvaluationInterval
}

// MaxRulesFileSizeBytes is the largest rules file of the workspace.
func (o *Overrides) MaxRulesFileSizeBytes(workspace string) int {
	return o.get(workspace).Ruler.MaxRulesFileSizeBytes
}
