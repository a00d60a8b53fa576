package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
)

// scope says what resource a route's action applies to and where its
// workspace comes from.
type scope int

const (
	// scopeAccount: the caller's account (create, list).
	scopeAccount scope = iota
	// scopePath: the workspace named by {workspaceId} in the path.
	scopePath
	// scopeHeader: the workspace named by X-Scope-OrgID (Mimir's paths).
	scopeHeader
	// scopeARN: the resource named by the {resourceArn} in the path.
	scopeARN
	// scopeNamespace: the rule groups namespace {name} of the workspace
	// {workspaceId} of the path.
	scopeNamespace
	// scopeHeaderNamespace: the rule groups namespace {namespace} of the
	// workspace named by X-Scope-OrgID (the rules configuration API).
	scopeHeaderNamespace
)

// errorFormat is how a route answers errors.
type errorFormat int

const (
	formatAWS        errorFormat = iota // AMP's REST-JSON exceptions
	formatPrometheus                    // Prometheus's JSON envelope
	formatText                          // remote write's plain text
)

func (f errorFormat) write(w http.ResponseWriter, err error) {
	switch f {
	case formatPrometheus:
		apierror.WritePrometheus(w, err)
	case formatText:
		apierror.WriteText(w, err)
	default:
		apierror.WriteAWS(w, err)
	}
}

// Route is one row of the route table: an operation at a path, with the
// IAM action it needs and the resource that action applies to. Authorising,
// auditing, throttling and accounting all read it from here.
type Route struct {
	// Operation is AMP's operation name; the IAM action is "aps:" + it.
	Operation auth.Operation
	// Pattern is the http.ServeMux pattern ("POST /workspaces").
	Pattern string
	scope   scope
	// control marks control-plane operations: throttled per account, and
	// every call audited (data-plane calls are audited when denied).
	control bool
	// readOnly marks operations that change nothing (CloudTrail's readOnly).
	readOnly bool
	// accountResource is the ARN suffix of a scopeAccount route's resource
	// ("workspace/*": arn:aws:aps:<region>:<account>:workspace/*).
	accountResource string
	// strip is the path prefix removed before the handler sees the request
	// ("/workspaces/{workspaceId}" or "/prometheus"); "" keeps the path.
	strip  string
	format errorFormat
	// maxBody is the route's body limit (0: AMP's 1 MB).
	maxBody int
	// rulesConfig marks the routes of Cortex's and Mimir's rules
	// configuration API, which one handler serves (BindRulesConfig).
	rulesConfig bool
	// requestTags returns the tags the request sets (aws:RequestTag/*) and
	// the tag keys it names (aws:TagKeys), from its body or query.
	requestTags func(r *http.Request, body []byte) (map[string]string, []string)
}

// Control tells whether the route is a control-plane operation.
func (rt *Route) Control() bool { return rt.control }

// RulesConfig tells whether the route belongs to the rules configuration
// API.
func (rt *Route) RulesConfig() bool { return rt.rulesConfig }

// Action is the IAM action the route needs.
func (rt *Route) Action() string { return rt.Operation.Action() }

// bodyTags reads the "tags" member of a JSON body.
func bodyTags(_ *http.Request, body []byte) (map[string]string, []string) {
	var in struct {
		Tags map[string]string `json:"tags"`
	}
	if json.Unmarshal(body, &in) != nil || in.Tags == nil {
		return nil, nil
	}
	keys := make([]string, 0, len(in.Tags))
	for k := range in.Tags {
		keys = append(keys, k)
	}
	return in.Tags, keys
}

// queryTagKeys reads the tagKeys of UntagResource's query.
func queryTagKeys(r *http.Request, _ []byte) (map[string]string, []string) {
	return nil, r.URL.Query()["tagKeys"]
}

// rulesBody bounds the body of a rule groups namespace's or an alert
// manager definition's create or put: the base64 of a document of AMP's
// 1 MB quota, in JSON.
const rulesBody = 2 << 20

// routeTable is every route of the public port. Adding a resource is a row
// here and a handler bound to its operation.
var routeTable = func() []*Route {
	control := func(op auth.Operation, pattern string, sc scope, readOnly bool) *Route {
		return &Route{Operation: op, Pattern: pattern, scope: sc, control: true, readOnly: readOnly, format: formatAWS}
	}
	rs := []*Route{
		{Operation: auth.OpCreateWorkspace, Pattern: "POST /workspaces", scope: scopeAccount, control: true, accountResource: "workspace/*", requestTags: bodyTags},
		{Operation: auth.OpListWorkspaces, Pattern: "GET /workspaces", scope: scopeAccount, control: true, readOnly: true, accountResource: "*"},
		control(auth.OpDescribeWorkspace, "GET /workspaces/{workspaceId}", scopePath, true),
		control(auth.OpDeleteWorkspace, "DELETE /workspaces/{workspaceId}", scopePath, false),
		control(auth.OpUpdateWorkspaceAlias, "POST /workspaces/{workspaceId}/alias", scopePath, false),
		control(auth.OpDescribeWorkspaceConfiguration, "GET /workspaces/{workspaceId}/configuration", scopePath, true),
		control(auth.OpUpdateWorkspaceConfiguration, "PATCH /workspaces/{workspaceId}/configuration", scopePath, false),
		control(auth.OpPutResourcePolicy, "PUT /workspaces/{workspaceId}/policy", scopePath, false),
		control(auth.OpDescribeResourcePolicy, "GET /workspaces/{workspaceId}/policy", scopePath, true),
		control(auth.OpDeleteResourcePolicy, "DELETE /workspaces/{workspaceId}/policy", scopePath, false),
		control(auth.OpCreateQueryLoggingConfiguration, "POST /workspaces/{workspaceId}/logging/query", scopePath, false),
		control(auth.OpDescribeQueryLoggingConfiguration, "GET /workspaces/{workspaceId}/logging/query", scopePath, true),
		control(auth.OpUpdateQueryLoggingConfiguration, "PUT /workspaces/{workspaceId}/logging/query", scopePath, false),
		control(auth.OpDeleteQueryLoggingConfiguration, "DELETE /workspaces/{workspaceId}/logging/query", scopePath, false),
		{Operation: auth.OpCreateRuleGroupsNamespace, Pattern: "POST /workspaces/{workspaceId}/rulegroupsnamespaces", scope: scopePath, control: true, requestTags: bodyTags, maxBody: rulesBody},
		control(auth.OpListRuleGroupsNamespaces, "GET /workspaces/{workspaceId}/rulegroupsnamespaces", scopePath, true),
		{Operation: auth.OpPutRuleGroupsNamespace, Pattern: "PUT /workspaces/{workspaceId}/rulegroupsnamespaces/{name}", scope: scopeNamespace, control: true, maxBody: rulesBody},
		control(auth.OpDescribeRuleGroupsNamespace, "GET /workspaces/{workspaceId}/rulegroupsnamespaces/{name}", scopeNamespace, true),
		control(auth.OpDeleteRuleGroupsNamespace, "DELETE /workspaces/{workspaceId}/rulegroupsnamespaces/{name}", scopeNamespace, false),
		{Operation: auth.OpCreateAlertManagerDefinition, Pattern: "POST /workspaces/{workspaceId}/alertmanager/definition", scope: scopePath, control: true, maxBody: rulesBody},
		{Operation: auth.OpPutAlertManagerDefinition, Pattern: "PUT /workspaces/{workspaceId}/alertmanager/definition", scope: scopePath, control: true, maxBody: rulesBody},
		control(auth.OpDescribeAlertManagerDefinition, "GET /workspaces/{workspaceId}/alertmanager/definition", scopePath, true),
		control(auth.OpDeleteAlertManagerDefinition, "DELETE /workspaces/{workspaceId}/alertmanager/definition", scopePath, false),
		control(auth.OpCreateLoggingConfiguration, "POST /workspaces/{workspaceId}/logging", scopePath, false),
		control(auth.OpDescribeLoggingConfiguration, "GET /workspaces/{workspaceId}/logging", scopePath, true),
		control(auth.OpUpdateLoggingConfiguration, "PUT /workspaces/{workspaceId}/logging", scopePath, false),
		control(auth.OpDeleteLoggingConfiguration, "DELETE /workspaces/{workspaceId}/logging", scopePath, false),
		{Operation: auth.OpTagResource, Pattern: "POST /tags/{resourceArn...}", scope: scopeARN, control: true, requestTags: bodyTags},
		{Operation: auth.OpUntagResource, Pattern: "DELETE /tags/{resourceArn...}", scope: scopeARN, control: true, requestTags: queryTagKeys},
		control(auth.OpListTagsForResource, "GET /tags/{resourceArn...}", scopeARN, true),
		{Operation: auth.OpRemoteWrite, Pattern: "POST /workspaces/{workspaceId}/api/v1/remote_write", scope: scopePath, format: formatText},
		{Operation: auth.OpRemoteWrite, Pattern: "POST /api/v1/push", scope: scopeHeader, format: formatText},
	}
	// Cortex's and Mimir's rules configuration API (mimirtool at
	// /prometheus/config/v1/rules, cortextool at /api/v1/rules), on the
	// workspace of X-Scope-OrgID. Its actions are AMP's on the namespace:
	// changing or removing a group puts the namespace.
	for _, prefix := range []string{"/prometheus/config/v1/rules", "/api/v1/rules"} {
		rc := func(op auth.Operation, pattern string, sc scope, readOnly bool) *Route {
			return &Route{Operation: op, Pattern: pattern, scope: sc, control: true, readOnly: readOnly, format: formatText, rulesConfig: true, maxBody: rulesBody}
		}
		rs = append(rs,
			rc(auth.OpListRuleGroupsNamespaces, "GET "+prefix, scopeHeader, true),
			rc(auth.OpDescribeRuleGroupsNamespace, "GET "+prefix+"/{namespace}", scopeHeaderNamespace, true),
			rc(auth.OpDescribeRuleGroupsNamespace, "GET "+prefix+"/{namespace}/{group}", scopeHeaderNamespace, true),
			rc(auth.OpPutRuleGroupsNamespace, "POST "+prefix+"/{namespace}", scopeHeaderNamespace, false),
			rc(auth.OpPutRuleGroupsNamespace, "DELETE "+prefix+"/{namespace}/{group}", scopeHeaderNamespace, false),
			rc(auth.OpDeleteRuleGroupsNamespace, "DELETE "+prefix+"/{namespace}", scopeHeaderNamespace, false))
	}
	// The Prometheus query API, below each workspace's endpoint and below
	// Mimir's /prometheus prefix. Prometheus's router answers methods it
	// does not serve.
	for _, q := range []struct {
		op   auth.Operation
		path string
	}{
		{auth.OpQueryMetrics, "/api/v1/query"},
		{auth.OpQueryMetrics, "/api/v1/query_range"},
		{auth.OpQueryMetrics, "/api/v1/format_query"},
		{auth.OpQueryMetrics, "/api/v1/parse_query"},
		{auth.OpGetLabels, "/api/v1/labels"},
		{auth.OpGetLabels, "/api/v1/label/{name}/values"},
		{auth.OpGetSeries, "/api/v1/series"},
		{auth.OpGetMetricMetadata, "/api/v1/metadata"},
		// AMP has no operations of their own for these: reading exemplars
		// is a query; build information is what a client reads before it
		// queries (Grafana's data source test and feature discovery).
		{auth.OpQueryMetrics, "/api/v1/query_exemplars"},
		{auth.OpQueryMetrics, "/api/v1/status/buildinfo"},
		{auth.OpListRules, "/api/v1/rules"},
		{auth.OpListAlerts, "/api/v1/alerts"},
	} {
		rs = append(rs,
			&Route{Operation: q.op, Pattern: "/workspaces/{workspaceId}" + q.path, scope: scopePath, readOnly: true, strip: "/workspaces/{workspaceId}", format: formatPrometheus},
			&Route{Operation: q.op, Pattern: "/prometheus" + q.path, scope: scopeHeader, readOnly: true, strip: "/prometheus", format: formatPrometheus})
	}
	// The Alertmanager v2 API of each workspace (AMP's data-plane
	// actions, guide L3180), below its endpoint and below Mimir's
	// /alertmanager prefix.
	for _, am := range []struct {
		op           auth.Operation
		method, path string
		readOnly     bool
	}{
		{auth.OpListAlertManagerAlerts, "GET", "/api/v2/alerts", true},
		{auth.OpCreateAlertManagerAlerts, "POST", "/api/v2/alerts", false},
		{auth.OpListAlertManagerAlertGroups, "GET", "/api/v2/alerts/groups", true},
		{auth.OpListAlertManagerReceivers, "GET", "/api/v2/receivers", true},
		{auth.OpListAlertManagerSilences, "GET", "/api/v2/silences", true},
		{auth.OpPutAlertManagerSilences, "POST", "/api/v2/silences", false},
		{auth.OpGetAlertManagerSilence, "GET", "/api/v2/silence/{silenceId}", true},
		{auth.OpDeleteAlertManagerSilence, "DELETE", "/api/v2/silence/{silenceId}", false},
		{auth.OpGetAlertManagerStatus, "GET", "/api/v2/status", true},
	} {
		rs = append(rs,
			&Route{Operation: am.op, Pattern: am.method + " /workspaces/{workspaceId}/alertmanager" + am.path, scope: scopePath, readOnly: am.readOnly, strip: "/workspaces/{workspaceId}/alertmanager", format: formatText},
			&Route{Operation: am.op, Pattern: am.method + " /alertmanager" + am.path, scope: scopeHeader, readOnly: am.readOnly, strip: "/alertmanager", format: formatText})
	}
	return rs
}()

// Routes returns the route table.
func Routes() []Route {
	out := make([]Route, len(routeTable))
	for i, r := range routeTable {
		out[i] = *r
	}
	return out
}

// stripPath removes a route's prefix, with its {workspaceId} filled in.
func stripPath(r *http.Request, rt *Route) *http.Request {
	if rt.strip == "" {
		return r
	}
	prefix := strings.Replace(rt.strip, "{workspaceId}", r.PathValue("workspaceId"), 1)
	r2 := r.Clone(r.Context())
	r2.URL.Path = strings.TrimPrefix(r.URL.Path, prefix)
	r2.URL.RawPath = ""
	return r2
}
