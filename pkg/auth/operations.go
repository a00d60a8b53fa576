package auth

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
)
