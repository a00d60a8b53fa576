package controlplane

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
)

// RuleGroupsNamespaces is the kind of a workspace's rule groups
// namespaces: each holds one Prometheus rules file.
var RuleGroupsNamespaces = Kind{
	Name:         "rulegroupsnamespaces",
	ARNType:      auth.TypeRuleGroupsNamespace,
	ResourceType: "RuleGroupsNamespace",
	NotFoundID:   apierror.IDRuleGroupsNamespaceNotFound,
	ExistsID:     apierror.IDRuleGroupsNamespaceExists,
}

// RulerLimits are the per-workspace limits a rules file is checked
// against when it is stored.
type RulerLimits interface {
	MaxRulesPerWorkspace(workspace string) int
	MinEvaluationInterval(workspace string) time.Duration
	MaxRulesFileSizeBytes(workspace string) int
}

// amRulerLimits are AMP's quotas, for a handler given no limits.
type amRulerLimits struct{}

func (amRulerLimits) MaxRulesPerWorkspace(string) int            { return 2000 }
func (amRulerLimits) MinEvaluationInterval(string) time.Duration { return 30 * time.Second }
func (amRulerLimits) MaxRulesFileSizeBytes(string) int           { return 1 << 20 }

// namespaceNameRe is AMP's RuleGroupsNamespaceName: 1 to 128 characters
// with at least one letter or digit.
var namespaceNameRe = regexp.MustCompile(`^.*[0-9A-Za-z][-.0-9A-Z_a-z]*.*$`)

func validNamespaceName(name string) error {
	if name == "" || len(name) > 128 || !namespaceNameRe.MatchString(name) || strings.ContainsAny(name, "\x00/") {
		return apierror.Invalid("name", "The name must be 1 to 128 characters, hold a letter or digit, and no slash.")
	}
	return nil
}

// rulesParser parses rules' expressions as promtool does.
var rulesParser = parser.NewParser(parser.Options{})

// ParseRules parses and validates a rules file as `promtool check rules`
// does (Prometheus's own rulefmt and PromQL parser): what it refuses,
// promtool refuses.
func ParseRules(data []byte) (*rulefmt.RuleGroups, error) {
	groups, errs := rulefmt.Parse(data, false, model.UTF8Validation, rulesParser, promslog.NewNopLogger())
	if len(errs) > 0 {
		msgs := make([]string, 0, len(errs))
		for i, err := range errs {
			if i == 10 {
				msgs = append(msgs, fmt.Sprintf("and %d more", len(errs)-i))
				break
			}
			msgs = append(msgs, err.Error())
		}
		return nil, apierror.Invalid("data", "The rules file is not valid: %s", strings.Join(msgs, "; "))
	}
	return groups, nil
}

// countRules returns the rules of a stored rules file (0 if it no longer
// parses: it was checked when stored).
func countRules(data []byte) int {
	groups, err := ParseRules(data)
	if err != nil {
		return 0
	}
	n := 0
	for _, g := range groups.Groups {
		n += len(g.Rules)
	}
	return n
}

// admitRules checks a rules file against the workspace's limits: its
// size, each group's evaluation interval, and the rules of all the
// workspace's namespaces together.
func admitRules(lim RulerLimits) Admit {
	return func(others []*Resource, r *Resource) error {
		ws := r.Workspace
		if max := lim.MaxRulesFileSizeBytes(ws); max > 0 && len(r.Data) > max {
			return apierror.Invalid("data", "The rules file is %d bytes, more than the %d allowed (-ruler.max-rules-file-size-bytes).", len(r.Data), max)
		}
		groups, err := ParseRules(r.Data)
		if err != nil {
			return err
		}
		n := 0
		var errs []error
		for _, g := range groups.Groups {
			n += len(g.Rules)
			if min := lim.MinEvaluationInterval(ws); g.Interval != 0 && time.Duration(g.Interval) < min {
				errs = append(errs, fmt.Errorf("group %q: evaluation interval %s is shorter than the %s allowed (-ruler.min-evaluation-interval)", g.Name, g.Interval, model.Duration(min)))
			}
		}
		if len(errs) > 0 {
			return apierror.Invalid("data", "%v", errors.Join(errs...))
		}
		if max := lim.MaxRulesPerWorkspace(ws); max > 0 {
			total := n
			for _, o := range others {
				total += countRules(o.Data)
			}
			if total > max {
				return apierror.New(apierror.QuotaExceeded, apierror.IDRulesQuota,
					"Limit exceeded. Workspace %s would hold %d rules, more than the %d allowed (-ruler.max-rules-per-workspace).", ws, total, max).About(RuleGroupsNamespaces.ResourceType, r.Name)
			}
		}
		return nil
	}
}
