package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

func TestRouteTable(t *testing.T) {
	patterns := map[string]bool{}
	for _, rt := range Routes() {
		require.NotEmpty(t, rt.Operation)
		require.False(t, patterns[rt.Pattern], "pattern %s listed twice", rt.Pattern)
		patterns[rt.Pattern] = true
		if rt.rulesConfig {
			require.Equal(t, formatText, rt.format, "%s: the rules configuration API answers errors as text, as Cortex and Mimir do", rt.Pattern)
		} else {
			require.Equal(t, rt.control, rt.format == formatAWS, "%s: control-plane routes answer AWS errors, data-plane ones Prometheus's", rt.Pattern)
		}
		if rt.scope == scopeAccount {
			require.NotEmpty(t, rt.accountResource, rt.Operation)
		}
		if rt.requestTags != nil {
			require.True(t, rt.control, "%s: request tags are read from the body serveRoute reads for control-plane routes", rt.Pattern)
		}
	}
	// Every route mounts on one mux without a conflict.
	a, err := New(Config{AuthMode: AuthNone, AnonymousAccount: "000000000000", ControlPlaneRate: 10}, "us-east-1", nil, nil, nil, nil, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	seen := map[auth.Operation]bool{}
	for _, rt := range Routes() {
		if !seen[rt.Operation] {
			a.Bind(rt.Operation, http.NotFoundHandler())
			seen[rt.Operation] = true
		}
	}
	a.BindRulesConfig(http.NotFoundHandler())
}

type fakeWorkspaces map[string]*auth.Resource

func (f fakeWorkspaces) Lookup(_ context.Context, id string) (*auth.Resource, error) {
	if r, ok := f[id]; ok {
		return r, nil
	}
	return nil, apierror.New(apierror.NotFound, apierror.IDWorkspaceNotFound, "Workspace not found: %s", id)
}

// LookupResource finds resources of a workspace under "<workspace>/<name>".
func (f fakeWorkspaces) LookupResource(_ context.Context, ws, _, name string) (*auth.Resource, error) {
	if r, ok := f[ws+"/"+name]; ok {
		return r, nil
	}
	return nil, apierror.New(apierror.NotFound, apierror.IDRuleGroupsNamespaceNotFound, "not found: %s", name)
}

func TestAuditTrail(t *testing.T) {
	var trail bytes.Buffer
	ws := fakeWorkspaces{"ws-1": {Account: "000000000000", ARN: "arn:aws:aps:us-east-1:000000000000:workspace/ws-1", Active: true}}
	a, err := New(Config{AuthMode: AuthNone, AnonymousAccount: "000000000000", ControlPlaneRate: 10}, "us-east-1", ws, nil, &trail, nil, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	var served []string
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := tenant.ID(r.Context())
		served = append(served, r.URL.Path+" "+id)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"workspaceId":"ws-2"}`))
	})
	a.Bind("CreateWorkspace", ok)
	a.Bind("QueryMetrics", ok)

	do := func(method, target, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set("User-Agent", "aws-cli/1.45")
		a.ServeHTTP(rec, req)
		return rec
	}
	rec := do("POST", "/workspaces?X-Amz-Signature=SECRETSIG&X-Amz-Credential=AKIA&long="+strings.Repeat("x", 10000), `{"alias":"a","tags":{"k":"v"}}`)
	require.Equal(t, http.StatusAccepted, rec.Code)
	require.NotEmpty(t, rec.Header().Get("x-amzn-RequestId"))
	rec = do("GET", "/workspaces/ws-1/api/v1/query?query=up", "")
	require.Equal(t, http.StatusAccepted, rec.Code)
	require.Equal(t, []string{"/workspaces ", "/api/v1/query ws-1"}, served, "the query handler sees the path below the workspace")
	rec = do("GET", "/workspaces/ws-missing/api/v1/query?query=up", "")
	require.Equal(t, http.StatusNotFound, rec.Code)

	// Usage by operation, from the route table.
	require.Equal(t, 1.0, testutil.ToFloat64(a.requests.WithLabelValues("CreateWorkspace")))
	require.Equal(t, 1.0, testutil.ToFloat64(a.requests.WithLabelValues("QueryMetrics")))
	require.Equal(t, 1.0, testutil.ToFloat64(a.refused.WithLabelValues("QueryMetrics", "ResourceNotFoundException")))

	lines := strings.Split(strings.TrimSpace(trail.String()), "\n")
	require.Len(t, lines, 2, "the control-plane call and the refused data-plane call; allowed data-plane calls are not audited")
	require.Contains(t, lines[1], `"errorCode":"ResourceNotFoundException"`)
	var ev Event
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &ev))
	require.Equal(t, "CreateWorkspace", ev.EventName)
	require.Equal(t, "aps.amazonaws.com", ev.EventSource)
	require.Equal(t, "aws-cli/1.45", ev.UserAgent)
	require.Equal(t, "000000000000", ev.UserIdentity.AccountID)
	require.Equal(t, "a", ev.RequestParameters["alias"])
	require.NotContains(t, lines[0], "X-Amz-Signature")
	require.NotContains(t, lines[0], "SECRETSIG")
	require.Less(t, len(lines[0]), 2000, "query values are truncated")
	require.Equal(t, map[string]any{"workspaceId": "ws-2"}, ev.ResponseElements)
}

func TestDeniedDataPlaneCallsAreAudited(t *testing.T) {
	var trail bytes.Buffer
	ws := fakeWorkspaces{"ws-1": {Account: "000000000000", ARN: "arn:aws:aps:us-east-1:000000000000:workspace/ws-1", Active: true}}
	a, err := New(Config{AuthMode: AuthNone, AnonymousAccount: "000000000000", ControlPlaneRate: 10}, "us-east-1", ws, nil, &trail, nil, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	deny, err := auth.ParsePolicy([]byte(`{"Statement":{"Effect":"Deny","Action":"aps:QueryMetrics","Resource":"*"}}`), false)
	require.NoError(t, err)
	a.anonymous.Policies = append(a.anonymous.Policies, deny)
	a.Bind("QueryMetrics", http.NotFoundHandler())
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/workspaces/ws-1/api/v1/query?query=up", nil))
	require.Equal(t, http.StatusForbidden, rec.Code)
	var ev Event
	require.NoError(t, json.Unmarshal(trail.Bytes(), &ev))
	require.Equal(t, "QueryMetrics", ev.EventName)
	require.Equal(t, "AccessDeniedException", ev.ErrorCode)
	require.Contains(t, ev.ErrorMessage, "with an explicit deny")
	require.Equal(t, "ws-1", ev.RequestParameters["workspaceId"])
}
