package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/sigv4"
	"github.com/stretchr/testify/require"
)

// signedDo sends a request signed with key (unsigned when key.id is
// empty) and returns the status, the error type (x-amzn-ErrorType or
// Prometheus's errorType) and the body.
func signedDo(t *testing.T, key iamKey, method, rawURL string, headers map[string]string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rt := http.DefaultTransport
	if key.id != "" {
		rt, err = sigv4.NewSigV4RoundTripper(sigv4Config(key.id, key.secret), http.DefaultTransport)
		require.NoError(t, err)
	}
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestIsolationAttacks: attacks on tenant isolation, each refused; where a
// resource of another account is aimed at, the answer is the answer about a
// resource that does not exist.
func TestIsolationAttacks(t *testing.T) {
	v, _ := startSigV4(t)
	base := v.BaseURL()
	ctx := context.Background()
	admin := keyAdmin.amp(base)
	mk := func(c *amp.Client, alias string, tags map[string]string) (string, string) {
		out, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String(alias), Tags: tags})
		require.NoError(t, err)
		return *out.WorkspaceId, *out.Arn
	}
	wsRed, arnRed := mk(admin, "red", map[string]string{"team": "red"})
	wsBlue, arnBlue := mk(admin, "blue", map[string]string{"team": "blue"})
	wsB, _ := mk(keyOther.amp(base), "theirs", nil)
	const missing = "ws-00000000-0000-4000-8000-000000000000"
	missingARN := "arn:aws:aps:us-east-1:111122223333:workspace/" + missing

	now := time.Now()
	write := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("iso_up", nil, prompb.Sample{Timestamp: now.UnixMilli(), Value: 1})}})
	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}
	query := func(ws string) string { return base + "/workspaces/" + ws + "/api/v1/query?query=iso_up" }
	pushURL := func(ws string) string { return base + "/workspaces/" + ws + "/api/v1/remote_write" }
	tagsURL := func(arn string) string { return base + "/tags/" + url.PathEscape(arn) }
	policy := func(ws, arn, principal, action string) []byte {
		doc := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":%s,"Action":%q,"Resource":%q}]}`, principal, action, arn)
		b, _ := json.Marshal(map[string]string{"policyDocument": doc})
		return b
	}
	// A rule groups namespace of the owner's, whose answers to another
	// account must be those of a missing one.
	rulesFile := "groups:\n  - name: iso_up_rules\n    rules:\n      - record: iso_up:sum\n        expr: sum(iso_up)\n"
	nsOut, err := admin.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(wsRed), Name: aws.String("iso-ns"), Data: []byte(rulesFile)})
	require.NoError(t, err)
	nsARN := *nsOut.Arn
	nsURL := func(ws, name string) string { return base + "/workspaces/" + ws + "/rulegroupsnamespaces/" + name }
	dataBody := func(name string) []byte {
		b, _ := json.Marshal(map[string]any{"name": name, "data": []byte("groups: []\n")})
		return b
	}

	// Data written by the owner, to prove nothing of it leaks.
	code, body := signedDo(t, keyAdmin, http.MethodPost, pushURL(wsRed), rw, write)
	require.Equal(t, http.StatusNoContent, code, body)

	type attack struct {
		name    string
		key     iamKey
		method  string
		url     string
		headers map[string]string
		body    []byte
		want    int
		// sameAs is the same request aimed at a missing resource: the
		// answer must not differ but for the ID.
		sameAs string
	}
	orgID := func(ws string) map[string]string { return map[string]string{"X-Scope-OrgID": ws} }
	rwOrg := func(ws string) map[string]string {
		h := map[string]string{"X-Scope-OrgID": ws}
		for k, v := range rw {
			h[k] = v
		}
		return h
	}
	attacks := []attack{
		{name: "another account's workspace id in a query path", key: keyOther, method: "GET", url: query(wsRed), want: 404, sameAs: query(missing)},
		{name: "another account's workspace id in a remote-write path", key: keyOther, method: "POST", url: pushURL(wsRed), headers: rw, body: write, want: 404, sameAs: pushURL(missing)},
		{name: "DescribeWorkspace of another account", key: keyOther, method: "GET", url: base + "/workspaces/" + wsRed, want: 404, sameAs: base + "/workspaces/" + missing},
		{name: "DeleteWorkspace of another account", key: keyOther, method: "DELETE", url: base + "/workspaces/" + wsRed, want: 404, sameAs: base + "/workspaces/" + missing},
		{name: "UpdateWorkspaceAlias of another account", key: keyOther, method: "POST", url: base + "/workspaces/" + wsRed + "/alias", body: []byte(`{"alias":"mine"}`), want: 404, sameAs: base + "/workspaces/" + missing + "/alias"},
		{name: "PutResourcePolicy on another account's workspace", key: keyOther, method: "PUT", url: base + "/workspaces/" + wsRed + "/policy", body: policy(wsRed, arnRed, `{"AWS":"444455556666"}`, "aps:QueryMetrics"), want: 404, sameAs: base + "/workspaces/" + missing + "/policy"},
		{name: "ListTagsForResource on another account's ARN", key: keyOther, method: "GET", url: tagsURL(arnRed), want: 404, sameAs: tagsURL(missingARN)},
		{name: "TagResource on another account's ARN", key: keyOther, method: "POST", url: tagsURL(arnRed), body: []byte(`{"tags":{"owned":"yes"}}`), want: 404, sameAs: tagsURL(missingARN)},
		{name: "X-Scope-OrgID spoofing on a query", key: keyOther, method: "GET", url: base + "/prometheus/api/v1/query?query=iso_up", headers: orgID(wsRed), want: 404},
		{name: "X-Scope-OrgID spoofing on a push", key: keyOther, method: "POST", url: base + "/api/v1/push", headers: rwOrg(wsRed), body: write, want: 404},
		{name: "X-Scope-OrgID naming two tenants", key: keyAdmin, method: "GET", url: base + "/prometheus/api/v1/query?query=iso_up", headers: orgID(wsRed + "|" + wsB), want: 404},
		{name: "rules API of another account's workspace", key: keyOther, method: "GET", url: base + "/workspaces/" + wsRed + "/api/v1/rules", want: 404, sameAs: base + "/workspaces/" + missing + "/api/v1/rules"},
		{name: "alerts API of another account's workspace", key: keyOther, method: "GET", url: base + "/workspaces/" + wsRed + "/api/v1/alerts", want: 404, sameAs: base + "/workspaces/" + missing + "/api/v1/alerts"},
		{name: "rules configuration of another account's workspace", key: keyOther, method: "GET", url: base + "/prometheus/config/v1/rules", headers: orgID(wsRed), want: 404},
		{name: "rule group loaded into another account's workspace", key: keyOther, method: "POST", url: base + "/prometheus/config/v1/rules/ns", headers: orgID(wsRed), body: []byte("name: g\nrules:\n  - record: r\n    expr: up\n"), want: 404},
		{name: "rules namespace of another account's workspace deleted", key: keyOther, method: "DELETE", url: base + "/api/v1/rules/ns", headers: orgID(wsRed), want: 404},
		{name: "alert manager definition of another account's workspace", key: keyOther, method: "GET", url: base + "/workspaces/" + wsRed + "/alertmanager/definition", want: 404, sameAs: base + "/workspaces/" + missing + "/alertmanager/definition"},
		{name: "alert manager definition put on another account's workspace", key: keyOther, method: "PUT", url: base + "/workspaces/" + wsRed + "/alertmanager/definition", body: []byte(`{"data":"YWxlcnRtYW5hZ2VyX2NvbmZpZzogfAogIHJvdXRlOiB7cmVjZWl2ZXI6IHJ9CiAgcmVjZWl2ZXJzOiBbe25hbWU6IHJ9XQo="}`), want: 404, sameAs: base + "/workspaces/" + missing + "/alertmanager/definition"},
		{name: "logging configuration of another account's workspace", key: keyOther, method: "GET", url: base + "/workspaces/" + wsRed + "/logging", want: 404, sameAs: base + "/workspaces/" + missing + "/logging"},
		{name: "DescribeRuleGroupsNamespace of another account, against a missing workspace", key: keyOther, method: "GET", url: nsURL(wsRed, "iso-ns"), want: 404, sameAs: nsURL(missing, "iso-ns")},
		{name: "DescribeRuleGroupsNamespace of another account, against a missing namespace", key: keyOther, method: "GET", url: nsURL(wsRed, "iso-ns"), want: 404, sameAs: nsURL(wsRed, "iso-nope")},
		{name: "PutRuleGroupsNamespace of another account", key: keyOther, method: "PUT", url: nsURL(wsRed, "iso-ns"), body: dataBody(""), want: 404, sameAs: nsURL(wsRed, "iso-nope")},
		{name: "DeleteRuleGroupsNamespace of another account", key: keyOther, method: "DELETE", url: nsURL(wsRed, "iso-ns"), want: 404, sameAs: nsURL(wsRed, "iso-nope")},
		{name: "ListRuleGroupsNamespaces of another account", key: keyOther, method: "GET", url: base + "/workspaces/" + wsRed + "/rulegroupsnamespaces", want: 404, sameAs: base + "/workspaces/" + missing + "/rulegroupsnamespaces"},
		{name: "CreateRuleGroupsNamespace in another account's workspace", key: keyOther, method: "POST", url: base + "/workspaces/" + wsRed + "/rulegroupsnamespaces", body: dataBody("iso-ns"), want: 404, sameAs: base + "/workspaces/" + missing + "/rulegroupsnamespaces"},
		{name: "ListTagsForResource on another account's namespace ARN", key: keyOther, method: "GET", url: tagsURL(nsARN), want: 404, sameAs: tagsURL(strings.TrimSuffix(nsARN, "/iso-ns") + "/iso-nope")},
		{name: "TagResource on another account's namespace ARN", key: keyOther, method: "POST", url: tagsURL(nsARN), body: []byte(`{"tags":{"owned":"yes"}}`), want: 404, sameAs: tagsURL(strings.TrimSuffix(nsARN, "/iso-ns") + "/iso-nope")},
		{name: "rules configuration of another account's namespace", key: keyOther, method: "GET", url: base + "/prometheus/config/v1/rules/iso-ns", headers: orgID(wsRed), want: 404, sameAs: base + "/prometheus/config/v1/rules/iso-nope"},
		{name: "rules configuration group of another account's namespace", key: keyOther, method: "GET", url: base + "/prometheus/config/v1/rules/iso-ns/iso_up_rules", headers: orgID(wsRed), want: 404, sameAs: base + "/prometheus/config/v1/rules/iso-nope/iso_up_rules"},
		{name: "rules configuration group of another account's namespace deleted", key: keyOther, method: "DELETE", url: base + "/prometheus/config/v1/rules/iso-ns/iso_up_rules", headers: orgID(wsRed), want: 404, sameAs: base + "/prometheus/config/v1/rules/iso-nope/iso_up_rules"},
		{name: "rules configuration namespace of another account deleted", key: keyOther, method: "DELETE", url: base + "/prometheus/config/v1/rules/iso-ns", headers: orgID(wsRed), want: 404, sameAs: base + "/prometheus/config/v1/rules/iso-nope"},
		{name: "ARN with a wildcard account", key: keyOther, method: "GET", url: tagsURL("arn:aws:aps:us-east-1:*:workspace/" + wsRed), want: 400},
		{name: "ARN of the owner but another region", key: keyAdmin, method: "GET", url: tagsURL("arn:aws:aps:eu-west-1:111122223333:workspace/" + wsRed), want: 404},
		{name: "ARN with a wildcard workspace", key: keyAdmin, method: "GET", url: tagsURL("arn:aws:aps:us-east-1:111122223333:workspace/*"), want: 400},
		{name: "resource policy for anyone", key: keyAdmin, method: "PUT", url: base + "/workspaces/" + wsRed + "/policy", body: policy(wsRed, arnRed, `"*"`, "aps:RemoteWrite"), want: 400},
		{name: "resource policy for every account by wildcard ARN", key: keyAdmin, method: "PUT", url: base + "/workspaces/" + wsRed + "/policy", body: policy(wsRed, arnRed, `{"AWS":"arn:aws:iam::*:root"}`, "aps:RemoteWrite"), want: 400},
		{name: "resource policy granting every action", key: keyAdmin, method: "PUT", url: base + "/workspaces/" + wsRed + "/policy", body: policy(wsRed, arnRed, `{"AWS":"444455556666"}`, "aps:*"), want: 400},
		{name: "resource policy granting a control-plane action", key: keyAdmin, method: "PUT", url: base + "/workspaces/" + wsRed + "/policy", body: policy(wsRed, arnRed, `{"AWS":"444455556666"}`, "aps:DeleteWorkspace"), want: 400},
		{name: "resource policy naming another workspace", key: keyAdmin, method: "PUT", url: base + "/workspaces/" + wsRed + "/policy", body: policy(wsRed, arnBlue, `{"AWS":"444455556666"}`, "aps:RemoteWrite"), want: 400},
		{name: "tag condition: query a workspace of another team", key: keyRed, method: "GET", url: query(wsBlue), want: 403},
		{name: "tag condition: retag another team's workspace", key: keyRed, method: "POST", url: tagsURL(arnBlue), body: []byte(`{"tags":{"team":"red"}}`), want: 403},
		{name: "tag condition: create without the team tag", key: keyRed, method: "POST", url: base + "/workspaces", body: []byte(`{"alias":"sneaky"}`), want: 403},
		{name: "tag condition: create with an extra tag key", key: keyRed, method: "POST", url: base + "/workspaces", body: []byte(`{"tags":{"team":"red","owner":"me"}}`), want: 403},
		{name: "tag condition: another account's workspace looks missing", key: keyRed, method: "GET", url: query(wsB), want: 403, sameAs: query(missing)},
		{name: "tag key differing only in case, to dodge a tag condition", key: keyAdmin, method: "POST", url: tagsURL(arnRed), body: []byte(`{"tags":{"TEAM":"blue"}}`), want: 400},
		{name: "explicit deny beats the tag allow", key: keyRed, method: "DELETE", url: base + "/workspaces/" + wsRed, want: 403},
		{name: "remote-write-only user queries", key: keyWriter, method: "GET", url: query(wsRed), want: 403},
		{name: "query-only user writes", key: keyReader, method: "POST", url: pushURL(wsRed), headers: rw, body: write, want: 403},
		{name: "user without policies", key: keyNothing, method: "GET", url: query(wsRed), want: 403},
		{name: "unsigned request", method: "GET", url: query(wsRed), want: 403},
		{name: "unknown access key", key: iamKey{"AKIAEXAMPLEUNKNOWN", "x"}, method: "GET", url: query(wsRed), want: 403},
		{name: "path traversal in the workspace id", key: keyAdmin, method: "GET", url: base + "/workspaces/..%2F..%2Fcontrol/api/v1/query?query=iso_up", want: 404},
		{name: "encoded slash between two ids", key: keyOther, method: "GET", url: base + "/workspaces/" + wsB + "%2F..%2F" + wsRed + "/api/v1/query?query=iso_up", want: 404},
		{name: "NUL byte in the workspace id", key: keyAdmin, method: "GET", url: base + "/workspaces/" + wsRed + "%00/api/v1/query?query=iso_up", want: 404},
		{name: "homoglyph workspace id", key: keyAdmin, method: "GET", url: base + "/workspaces/" + strings.Replace(wsRed, "ws-", "wѕ-", 1) + "/api/v1/query?query=iso_up", want: 404},
		{name: "10 KB workspace id", key: keyAdmin, method: "GET", url: base + "/workspaces/ws-" + strings.Repeat("a", 10<<10) + "/api/v1/query?query=iso_up", want: 404},
		{name: "X-Scope-OrgID with traversal", key: keyAdmin, method: "GET", url: base + "/prometheus/api/v1/query?query=iso_up", headers: orgID("../control/workspaces"), want: 404},
		{name: "oversized JSON body", key: keyAdmin, method: "POST", url: base + "/workspaces", body: []byte(`{"alias":"` + strings.Repeat("a", 2<<20) + `"}`), want: 413},
		{name: "malformed JSON body", key: keyAdmin, method: "POST", url: base + "/workspaces/" + wsRed + "/alias", body: []byte(`{"alias":`), want: 400},
		{name: "deeply nested JSON body", key: keyAdmin, method: "PATCH", url: base + "/workspaces/" + wsRed + "/configuration", body: []byte(strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)), want: 400},
		{name: "JSON of the wrong type", key: keyAdmin, method: "PATCH", url: base + "/workspaces/" + wsRed + "/configuration", body: []byte(`{"retentionPeriodInDays":"forever"}`), want: 400},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			code, body := signedDo(t, a.key, a.method, a.url, a.headers, a.body)
			require.Equal(t, a.want, code, body)
			require.NotContains(t, body, "iso_up", "no data of the workspace")
			if a.sameAs != "" {
				code2, body2 := signedDo(t, a.key, a.method, a.sameAs, a.headers, a.body)
				require.Equal(t, code2, code)
				norm := func(s string) string {
					for _, id := range []string{wsRed, wsB, missing, "444455556666", "111122223333", "iso-nope", "iso-ns"} {
						s = strings.ReplaceAll(s, id, "<id>")
					}
					return s
				}
				require.Equal(t, norm(body2), norm(body), "the answer tells whether the resource exists")
			}
		})
	}

	// Nothing changed: the owner's workspace, its alias and tags are intact.
	desc, err := admin.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(wsRed)})
	require.NoError(t, err)
	require.Equal(t, "red", *desc.Workspace.Alias)
	require.Equal(t, map[string]string{"team": "red"}, desc.Workspace.Tags)
	ns, err := admin.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: aws.String(wsRed), Name: aws.String("iso-ns")})
	require.NoError(t, err)
	require.Equal(t, rulesFile, string(ns.RuleGroupsNamespace.Data), "the namespace is intact")
	require.Empty(t, ns.RuleGroupsNamespace.Tags)
	blue, err := admin.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(wsBlue)})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"team": "blue"}, blue.Workspace.Tags)

	// Positive controls, so that the refusals above are not refusals of
	// everything: the red team reaches its own workspace, writers write,
	// readers read.
	code, body = signedDo(t, keyRed, "GET", query(wsRed), nil, nil)
	require.Equal(t, 200, code, body)
	code, body = signedDo(t, keyWriter, "POST", pushURL(wsRed), rw, write)
	require.Equal(t, 204, code, body)
	code, body = signedDo(t, keyReader, "GET", query(wsRed), nil, nil)
	require.Equal(t, 200, code, body)
	code, body = signedDo(t, keyRed, "POST", base+"/workspaces", nil, []byte(`{"tags":{"team":"red","env":"dev"}}`))
	require.Equal(t, 202, code, body)
	// The Mimir-compatible paths serve the caller's own workspace named in
	// X-Scope-OrgID: their refusals above are not a missing route.
	code, body = signedDo(t, keyAdmin, "GET", base+"/prometheus/api/v1/query?query=iso_up", orgID(wsRed), nil)
	require.Equal(t, 200, code, body)
	require.Contains(t, body, "iso_up")
	code, body = signedDo(t, keyAdmin, "POST", base+"/api/v1/push", rwOrg(wsRed), write)
	require.Equal(t, 204, code, body)

	// With SigV4 the public port serves no metrics, whose workspace labels
	// would list every account's workspaces.
	code, body = signedDo(t, keyOther, "GET", base+"/metrics", nil, nil)
	require.NotEqual(t, 200, code)
	require.NotContains(t, body, wsRed)
}

// TestCrossAccountResourcePolicy: a resource policy lets another account
// remote-write into one workspace, and nothing more; its identity policies
// must allow the action too.
func TestCrossAccountResourcePolicy(t *testing.T) {
	v, _ := startSigV4(t)
	base := v.BaseURL()
	ctx := context.Background()
	admin := keyAdmin.amp(base)
	out, err := admin.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("shared")})
	require.NoError(t, err)
	ws, arn := *out.WorkspaceId, *out.Arn
	doc := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["444455556666"]},"Action":["aps:RemoteWrite"],"Resource":%q}]}`, arn)
	_, err = admin.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: aws.String(ws), PolicyDocument: aws.String(doc)})
	require.NoError(t, err)

	now := time.Now()
	write := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("shared_up", nil, prompb.Sample{Timestamp: now.UnixMilli(), Value: 1})}})
	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}
	push := base + "/workspaces/" + ws + "/api/v1/remote_write"

	code, body := signedDo(t, keyOtherWriter, "POST", push, rw, write)
	require.Equal(t, 204, code, "the other account writes: %s", body)
	code, body = signedDo(t, keyOther, "GET", base+"/workspaces/"+ws+"/api/v1/query?query=shared_up", nil, nil)
	require.Equal(t, 403, code, "granted writes, not queries: %s", body)
	require.Contains(t, body, "no resource-based policy allows the aps:QueryMetrics action")
	code, _ = signedDo(t, keyOther, "GET", base+"/workspaces/"+ws, nil, nil)
	require.Equal(t, 404, code, "control-plane operations are never granted across accounts")
	code, _ = signedDo(t, keyOther, "DELETE", base+"/workspaces/"+ws, nil, nil)
	require.Equal(t, 404, code)

	// The owner reads what the other account wrote.
	code, body = signedDo(t, keyAdmin, "GET", base+"/workspaces/"+ws+"/api/v1/query?query=shared_up", nil, nil)
	require.Equal(t, 200, code, body)
	require.Contains(t, body, "shared_up")

	// Revoked: the workspace is missing again for the other account.
	_, err = admin.DeleteResourcePolicy(ctx, &amp.DeleteResourcePolicyInput{WorkspaceId: aws.String(ws)})
	require.NoError(t, err)
	code, _ = signedDo(t, keyOtherWriter, "POST", push, rw, write)
	require.Equal(t, 404, code)
}
