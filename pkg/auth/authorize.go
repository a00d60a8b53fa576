package auth

import (
	"fmt"
	"slices"
	"strings"
)

// The AWS managed policies for AMP a user of the credentials file may be
// given, as documents over the aps actions (their statements on other
// services do not apply here).
var managedPolicies = map[string]string{
	"AmazonPrometheusFullAccess": `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["aps:*"],"Resource":"*"}]}`,
	"AmazonPrometheusConsoleFullAccess": `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["aps:*"],"Resource":"*"}]}`,
	"AmazonPrometheusRemoteWriteAccess": `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["aps:RemoteWrite"],"Resource":"*"}]}`,
	"AmazonPrometheusQueryAccess": `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["aps:GetLabels","aps:GetMetricMetadata","aps:GetSeries","aps:QueryMetrics"],"Resource":"*"}]}`,
}

// FullAccess is the managed policy allowing every aps action.
const FullAccess = "AmazonPrometheusFullAccess"

// ManagedPolicy returns the compiled managed policy of that name.
func ManagedPolicy(name string) (*Policy, error) {
	doc, ok := managedPolicies[name]
	if !ok {
		names := make([]string, 0, len(managedPolicies))
		for n := range managedPolicies {
			names = append(names, n)
		}
		return nil, fmt.Errorf("unknown managed policy %q (known: %s)", name, strings.Join(names, ", "))
	}
	return ParsePolicy([]byte(doc), false)
}

// ResourcePolicyActions are the actions a workspace's resource policy may
// grant: the data plane's. Control-plane operations are never granted to
// other accounts.
var ResourcePolicyActions = []string{
	"aps:RemoteWrite", "aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata",
}

// ValidateResourcePolicy compiles a workspace's resource policy and refuses
// one that grants more than a resource policy may: actions beyond
// ResourcePolicyActions, resources beyond the workspace, anonymous
// principals, or Not* forms whose reach is unbounded.
func ValidateResourcePolicy(doc []byte, workspaceARN string) (*Policy, error) {
	p, err := ParsePolicy(doc, true)
	if err != nil {
		return nil, err
	}
	for i, st := range p.statements {
		if st.notAction || st.notResource {
			return nil, fmt.Errorf("statement %d: NotAction and NotResource are not allowed in a resource policy", i)
		}
		for _, a := range st.actions {
			if !allowedResourceAction(a) {
				return nil, fmt.Errorf("statement %d: action %q cannot be granted by a workspace's resource policy (allowed: %s)", i, a, strings.Join(ResourcePolicyActions, ", "))
			}
		}
		for _, r := range st.resources {
			if r != workspaceARN {
				return nil, fmt.Errorf("statement %d: resource %q is not this workspace (%s)", i, r, workspaceARN)
			}
		}
		for _, pr := range st.principals {
			if pr == "*" || strings.Contains(pr, "*") || strings.Contains(pr, "?") {
				return nil, fmt.Errorf("statement %d: a principal must name an account or a user, not %q", i, pr)
			}
		}
	}
	return p, nil
}

// Actions are every action of the aps service: the operations of AMP's API
// and its data plane.
var Actions = []string{
	"aps:CreateAlertManagerAlerts", "aps:CreateAlertManagerDefinition", "aps:CreateAnomalyDetector", "aps:CreateLoggingConfiguration",
	"aps:CreateQueryLoggingConfiguration", "aps:CreateRuleGroupsNamespace", "aps:CreateScraper", "aps:CreateWorkspace",
	"aps:DeleteAlertManagerDefinition", "aps:DeleteAlertManagerSilence", "aps:DeleteAnomalyDetector", "aps:DeleteLoggingConfiguration",
	"aps:DeleteQueryLoggingConfiguration", "aps:DeleteResourcePolicy", "aps:DeleteRuleGroupsNamespace", "aps:DeleteScraper",
	"aps:DeleteScraperLoggingConfiguration", "aps:DeleteWorkspace", "aps:DescribeAlertManagerDefinition", "aps:DescribeAnomalyDetector",
	"aps:DescribeLoggingConfiguration", "aps:DescribeQueryLoggingConfiguration", "aps:DescribeResourcePolicy", "aps:DescribeRuleGroupsNamespace",
	"aps:DescribeScraper", "aps:DescribeScraperLoggingConfiguration", "aps:DescribeWorkspace", "aps:DescribeWorkspaceConfiguration",
	"aps:GetAlertManagerSilence", "aps:GetAlertManagerStatus", "aps:GetDefaultScraperConfiguration", "aps:GetLabels",
	"aps:GetMetricMetadata", "aps:GetSeries", "aps:ListAlertManagerAlertGroups", "aps:ListAlertManagerAlerts",
	"aps:ListAlertManagerReceivers", "aps:ListAlertManagerSilences", "aps:ListAlerts", "aps:ListAnomalyDetectors",
	"aps:ListRuleGroupsNamespaces", "aps:ListRules", "aps:ListScrapers", "aps:ListTagsForResource", "aps:ListWorkspaces",
	"aps:PutAlertManagerDefinition", "aps:PutAlertManagerSilences", "aps:PutAnomalyDetector", "aps:PutResourcePolicy",
	"aps:PutRuleGroupsNamespace", "aps:QueryMetrics", "aps:RemoteWrite", "aps:TagResource", "aps:UntagResource",
	"aps:UpdateLoggingConfiguration", "aps:UpdateQueryLoggingConfiguration", "aps:UpdateScraper", "aps:UpdateScraperLoggingConfiguration",
	"aps:UpdateWorkspaceAlias", "aps:UpdateWorkspaceConfiguration",
}

// allowedResourceAction tells whether an action pattern matches only
// actions a resource policy may grant: it is tried against every action of
// the service ("aps:Query*" may stay; "aps:Get*" also matches
// GetDefaultScraperConfiguration, and goes).
func allowedResourceAction(pattern string) bool {
	matched := false
	for _, a := range Actions {
		if !Wildcard(pattern, a, true) {
			continue
		}
		if !slices.Contains(ResourcePolicyActions, a) {
			return false
		}
		matched = true
	}
	return matched
}

// Resource is a workspace as authorisation sees it.
type Resource struct {
	Account string
	ARN     string
	Active  bool
	Tags    map[string]string
	Policy  *Policy // the resource policy; nil: none
}

// Decision is the outcome of authorising one request, with the reason a
// denial gives in its message.
type Decision struct {
	Allowed bool
	Reason  string
}

// Authorize combines an identity's policies and the resource's policy as
// IAM does: an explicit Deny in either wins; within the resource's account
// an Allow in either suffices; across accounts both must allow.
// resourceAccount is the account that owns the resource.
func Authorize(identity []*Policy, resource *Policy, resourceAccount string, req *Request) Decision {
	idEffect := NoMatch
	for _, p := range identity {
		switch p.Evaluate(req) {
		case Denied:
			return Decision{Reason: "with an explicit deny in an identity-based policy"}
		case Allowed:
			idEffect = Allowed
		}
	}
	sameAccount := req.Principal.Account == resourceAccount
	resEffect := resource.evaluate(req, sameAccount)
	if resEffect == Denied {
		return Decision{Reason: "with an explicit deny in a resource-based policy"}
	}
	if sameAccount {
		if idEffect == Allowed || resEffect == Allowed {
			return Decision{Allowed: true}
		}
		return Decision{Reason: "because no identity-based policy allows the " + req.Action + " action"}
	}
	switch {
	case resEffect != Allowed:
		return Decision{Reason: "because no resource-based policy allows the " + req.Action + " action"}
	case idEffect != Allowed:
		return Decision{Reason: "because no identity-based policy allows the " + req.Action + " action"}
	}
	return Decision{Allowed: true}
}

// DeniedMessage is AWS's wording of an access denial.
func DeniedMessage(req *Request, d Decision) string {
	return fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s %s", req.Principal.ARN(), req.Action, req.Resource, d.Reason)
}
