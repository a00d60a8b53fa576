package controlplane

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template/parse"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
	"github.com/vigil-metrics/vigil/pkg/promqlshape"
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
	MaxRuleGroupsNamespacesPerWorkspace(workspace string) int
	MinEvaluationInterval(workspace string) time.Duration
	MaxRulesFileSizeBytes(workspace string) int
}

// amRulerLimits are AMP's quotas, for a handler given no limits.
type amRulerLimits struct{}

func (amRulerLimits) MaxRulesPerWorkspace(string) int                { return 2000 }
func (amRulerLimits) MaxRuleGroupsNamespacesPerWorkspace(string) int { return 100 }
func (amRulerLimits) MinEvaluationInterval(string) time.Duration     { return 30 * time.Second }
func (amRulerLimits) MaxRulesFileSizeBytes(string) int               { return 1 << 20 }

// namespaceNameRe is AMP's RuleGroupsNamespaceName: 1 to 128 characters
// with at least one letter or digit.
var namespaceNameRe = regexp.MustCompile(`^.*[0-9A-Za-z][-.0-9A-Z_a-z]*.*$`)

func validNamespaceName(name string) error {
	if name == "" || utf8.RuneCountInString(name) > 128 || !utf8.ValidString(name) || !namespaceNameRe.MatchString(name) || strings.ContainsAny(name, "\x00/*?") {
		return apierror.Invalid("name", "The name must be 1 to 128 characters, hold a letter or digit, and none of / * ? (which its ARN could not hold).")
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

// checkShapes refuses a rules file holding an expression nested or chained
// beyond what parsing it cheaply allows (promqlshape.RuleTooComplex): a
// rule's expr, or a string in its labels' and annotations' templates, which
// the template's query function would parse at every evaluation. The YAML
// is decoded without the expressions being parsed; the ruler checks the
// queries templates build at run time the same way.
func checkShapes(data []byte) error {
	var file struct {
		Groups []struct {
			Rules []struct {
				Expr        string            `yaml:"expr"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if yaml.Unmarshal(data, &file) != nil {
		return nil // not YAML: the parser says what is wrong
	}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if promqlshape.RuleTooComplex(r.Expr) {
				return apierror.Invalid("data", "A rule's expression nests more than %d levels or holds more than %d binary operators.", promqlshape.MaxRuleDepth, promqlshape.MaxRuleOperators)
			}
			for _, texts := range []map[string]string{r.Labels, r.Annotations} {
				for name, text := range texts {
					if templateTooComplex(text) {
						return apierror.Invalid("data", "The template of %q holds a string that nests more than %d levels or holds more than %d binary operators, too complex a query.", name, promqlshape.MaxRuleDepth, promqlshape.MaxRuleOperators)
					}
				}
			}
		}
	}
	return nil
}

// templateTooComplex reports whether a label's or annotation's template
// holds a string literal too complex for a query (a template that does not
// parse is left to Prometheus's check, which says why).
func templateTooComplex(text string) bool {
	if !strings.Contains(text, "{{") {
		return false
	}
	t := parse.New("")
	t.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := t.Parse(text, "", "", trees); err != nil {
		return false
	}
	trees[""] = t // the text outside {{define}}s
	var walk func(n parse.Node) bool
	walk = func(n parse.Node) bool {
		switch n := n.(type) {
		case *parse.StringNode:
			return promqlshape.RuleTooComplex(n.Text)
		case *parse.ListNode:
			if n != nil {
				return slices.ContainsFunc(n.Nodes, walk)
			}
		case *parse.ActionNode:
			return walk(n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				return slices.ContainsFunc(n.Cmds, func(c *parse.CommandNode) bool { return walk(c) })
			}
		case *parse.CommandNode:
			return slices.ContainsFunc(n.Args, walk)
		case *parse.IfNode:
			return walk(n.Pipe) || walk(n.List) || walk(n.ElseList)
		case *parse.RangeNode:
			return walk(n.Pipe) || walk(n.List) || walk(n.ElseList)
		case *parse.WithNode:
			return walk(n.Pipe) || walk(n.List) || walk(n.ElseList)
		case *parse.TemplateNode:
			return walk(n.Pipe)
		case *parse.ChainNode:
			return walk(n.Node)
		}
		return false
	}
	for _, tree := range trees {
		if walk(tree.Root) {
			return true
		}
	}
	return false
}

// rulesChecks are the checks of a workspace's rules files: the file alone
// (its size, its expressions' shape, Prometheus's parsers, each group's
// interval), then the workspace's quotas of rules and namespaces.
func rulesChecks(lim RulerLimits, ws string) Checks {
	return Checks{
		Document: func(data []byte) (int, error) {
			if max := lim.MaxRulesFileSizeBytes(ws); max > 0 && len(data) > max {
				return 0, apierror.Invalid("data", "The rules file is %d bytes, more than the %d allowed (-ruler.max-rules-file-size-bytes).", len(data), max)
			}
			if err := checkShapes(data); err != nil {
				return 0, err
			}
			groups, err := ParseRules(data)
			if err != nil {
				return 0, err
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
				return 0, apierror.Invalid("data", "%v", errors.Join(errs...))
			}
			return n, nil
		},
		MaxUnits:     lim.MaxRulesPerWorkspace(ws),
		MaxResources: lim.MaxRuleGroupsNamespacesPerWorkspace(ws),
		QuotaExceeded: func(what string, total, max int) error {
			if what == "resources" {
				return apierror.New(apierror.QuotaExceeded, apierror.IDRuleGroupsNamespacesQuota,
					"Limit exceeded. Workspace %s would hold %d rule groups namespaces, more than the %d allowed (-ruler.max-rule-groups-namespaces-per-workspace).", ws, total, max).About(RuleGroupsNamespaces.ResourceType, ws)
			}
			return apierror.New(apierror.QuotaExceeded, apierror.IDRulesQuota,
				"Limit exceeded. Workspace %s would hold %d rules, more than the %d allowed (-ruler.max-rules-per-workspace).", ws, total, max).About(RuleGroupsNamespaces.ResourceType, ws)
		},
	}
}
