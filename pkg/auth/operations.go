package auth

import "context"

// Operation is an AMP operation name, as the route table, the handlers,
// the audit trail and IAM policies name it; its IAM action is "aps:" + it.
// The route table and the handlers share these constants, so a misspelt
// operation does not compile.
type Operation string

// Action is the IAM action of the operation.
func (o Operation) Action() string { return "aps:" + string(o) }

// The operations Vigil serves.
const (
	OpCreateWorkspace                   Operation = "CreateWorkspace"
	OpListWorkspaces                    Operation = "ListWorkspaces"
	OpDescribeWorkspace                 Operation = "DescribeWorkspace"
	OpDeleteWorkspace                   Operation = "DeleteWorkspace"
	OpUpdateWorkspaceAlias              Operation = "UpdateWorkspaceAlias"
	OpDescribeWorkspaceConfiguration    Operation = "DescribeWorkspaceConfiguration"
	OpUpdateWorkspaceConfiguration      Operation = "UpdateWorkspaceConfiguration"
	OpPutResourcePolicy                 Operation = "PutResourcePolicy"
	OpDescribeResourcePolicy            Operation = "DescribeResourcePolicy"
	OpDeleteResourcePolicy              Operation = "DeleteResourcePolicy"
	OpCreateQueryLoggingConfiguration   Operation = "CreateQueryLoggingConfiguration"
	OpDescribeQueryLoggingConfiguration Operation = "DescribeQueryLoggingConfiguration"
	OpUpdateQueryLoggingConfiguration   Operation = "UpdateQueryLoggingConfiguration"
	OpDeleteQueryLoggingConfiguration   Operation = "DeleteQueryLoggingConfiguration"
	OpCreateRuleGroupsNamespace         Operation = "CreateRuleGroupsNamespace"
	OpPutRuleGroupsNamespace            Operation = "PutRuleGroupsNamespace"
	OpDescribeRuleGroupsNamespace       Operation = "DescribeRuleGroupsNamespace"
	OpListRuleGroupsNamespaces          Operation = "ListRuleGroupsNamespaces"
	OpDeleteRuleGroupsNamespace         Operation = "DeleteRuleGroupsNamespace"
	OpCreateAlertManagerDefinition      Operation = "CreateAlertManagerDefinition"
	OpPutAlertManagerDefinition         Operation = "PutAlertManagerDefinition"
	OpDescribeAlertManagerDefinition    Operation = "DescribeAlertManagerDefinition"
	OpDeleteAlertManagerDefinition      Operation = "DeleteAlertManagerDefinition"
	OpCreateLoggingConfiguration        Operation = "CreateLoggingConfiguration"
	OpDescribeLoggingConfiguration      Operation = "DescribeLoggingConfiguration"
	OpUpdateLoggingConfiguration        Operation = "UpdateLoggingConfiguration"
	OpDeleteLoggingConfiguration        Operation = "DeleteLoggingConfiguration"
	OpTagResource                       Operation = "TagResource"
	OpUntagResource                     Operation = "UntagResource"
	OpListTagsForResource               Operation = "ListTagsForResource"

	OpRemoteWrite       Operation = "RemoteWrite"
	OpQueryMetrics      Operation = "QueryMetrics"
	OpGetLabels         Operation = "GetLabels"
	OpGetSeries         Operation = "GetSeries"
	OpGetMetricMetadata Operation = "GetMetricMetadata"
	OpListRules         Operation = "ListRules"
	OpListAlerts        Operation = "ListAlerts"

	// The alert manager's data plane (guide L3180).
	OpCreateAlertManagerAlerts    Operation = "CreateAlertManagerAlerts"
	OpListAlertManagerAlerts      Operation = "ListAlertManagerAlerts"
	OpListAlertManagerAlertGroups Operation = "ListAlertManagerAlertGroups"
	OpListAlertManagerReceivers   Operation = "ListAlertManagerReceivers"
	OpListAlertManagerSilences    Operation = "ListAlertManagerSilences"
	OpGetAlertManagerSilence      Operation = "GetAlertManagerSilence"
	OpPutAlertManagerSilences     Operation = "PutAlertManagerSilences"
	OpDeleteAlertManagerSilence   Operation = "DeleteAlertManagerSilence"
	OpGetAlertManagerStatus       Operation = "GetAlertManagerStatus"
)

// Authorizer decides whether the caller of a request may also perform op
// on the resource arn (with its tags), as IAM decided the request's own
// action: for what a handler learns only from the stored state (a rules
// configuration edit creating or deleting a namespace, a listing showing
// each namespace's rules).
type Authorizer func(op Operation, arn string, tags map[string]string) error

type authorizerKey struct{}

// WithAuthorizer returns ctx carrying the caller's Authorizer.
func WithAuthorizer(ctx context.Context, a Authorizer) context.Context {
	return context.WithValue(ctx, authorizerKey{}, a)
}

// AuthorizerFrom returns the caller's Authorizer; a request handed over by
// another replica, which decided for it, carries none.
func AuthorizerFrom(ctx context.Context) (Authorizer, bool) {
	a, ok := ctx.Value(authorizerKey{}).(Authorizer)
	return a, ok
}
