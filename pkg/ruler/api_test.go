package ruler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/httpgrpc"
	httpgrpcserver "github.com/grafana/dskit/httpgrpc/server"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// apiAnswer is a Prometheus API answer of the rules or alerts API.
type apiAnswer struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		Groups []struct {
			Name  string `json:"name"`
			File  string `json:"file"`
			Rules []struct {
				Name   string            `json:"name"`
				Type   string            `json:"type"`
				Alerts []json.RawMessage `json:"alerts"`
			} `json:"rules"`
		} `json:"groups"`
		NextToken string `json:"groupNextToken"`
		Alerts    []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	} `json:"data"`
}

// TestRulesAPIMergesEveryRuler: two rulers each evaluate part of a
// workspace's groups; the rules and alerts APIs answer for all of them, with
// Prometheus's filters, order and pagination, and only for the workspace
// asked about. A ruler that cannot be heard fails the answer.
func TestRulesAPIMergesEveryRuler(t *testing.T) {
	var data string
	for i := 0; i < 8; i++ {
		data += fmt.Sprintf("  - name: g%d\n    interval: 1s\n    rules:\n      - record: r%d\n        expr: vector(1)\n      - alert: A%d\n        expr: vector(%d) > 0\n        labels: {team: t%d}\n", i, i, i, i%2, i)
	}
	files := staticFiles{
		"ws-1": {{Name: "ns-b", Data: []byte("groups:\n" + data), Revision: 1}, {Name: "ns-a", Data: []byte("groups:\n  - name: solo\n    rules:\n      - record: s\n        expr: vector(2)\n"), Revision: 1}},
		"ws-2": {{Name: "other", Data: []byte("groups:\n  - name: hidden\n    rules:\n      - record: h\n        expr: vector(3)\n"), Revision: 1}},
	}
	st := teststorage.New(t)
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute})
	rulers := map[string]*Ruler{}
	for _, id := range []string{"a", "b"} {
		rl := New(Config{EvaluationInterval: time.Minute, PollInterval: time.Hour, HandoffWait: -1}, files, noOffset{}, engine, st, &fakePusher{},
			twoRulers{}, fakeMember{services.NewIdleService(nil, nil), id}, prometheus.NewRegistry(), log.NewNopLogger())
		t.Cleanup(func() { _ = rl.stopping(nil) })
		require.NoError(t, rl.Sync(context.Background()))
		require.NotEmpty(t, rl.RuleGroups("ws-1"), "ruler %s has groups of its own", id)
		rulers[id] = rl
	}
	failing := ""
	api := NewAPI(twoRulers{}, func(inst ring.InstanceDesc) (Client, error) {
		if inst.Id == failing {
			return func(context.Context, *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error) {
				return nil, errors.New("connection refused")
			}, nil
		}
		return httpgrpcserver.NewServer(rulers[inst.Id].Internal()).Handle, nil
	}, log.NewNopLogger())
	get := func(ws, path string, q url.Values) (int, apiAnswer) {
		r := httptest.NewRequest(http.MethodGet, path+"?"+q.Encode(), nil)
		r = r.WithContext(tenant.WithID(r.Context(), ws))
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		var a apiAnswer
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &a), w.Body.String())
		return w.Code, a
	}
	names := func(a apiAnswer) []string {
		var out []string
		for _, g := range a.Data.Groups {
			out = append(out, g.File+"/"+g.Name)
		}
		return out
	}
	all := []string{"ns-a/solo"}
	for i := 0; i < 8; i++ {
		all = append(all, fmt.Sprintf("ns-b/g%d", i))
	}

	code, a := get("ws-1", rulesPath, nil)
	require.Equal(t, http.StatusOK, code, a.Error)
	require.Equal(t, all, names(a), "every ruler's groups, in Prometheus's order")
	require.Len(t, a.Data.Groups[1].Rules, 2)

	_, a = get("ws-1", rulesPath, url.Values{"type": {"alert"}})
	require.Equal(t, all[1:], names(a), "a group without alerting rules is left out")
	for _, g := range a.Data.Groups {
		require.Len(t, g.Rules, 1)
		require.Equal(t, "alerting", g.Rules[0].Type)
	}
	_, a = get("ws-1", rulesPath, url.Values{"rule_group[]": {"g3", "solo"}, "file[]": {"ns-b"}})
	require.Equal(t, []string{"ns-b/g3"}, names(a))
	_, a = get("ws-1", rulesPath, url.Values{"rule_name[]": {"r5", "s"}})
	require.Equal(t, []string{"ns-a/solo", "ns-b/g5"}, names(a))
	_, a = get("ws-1", rulesPath, url.Values{"match[]": {`{team="t6"}`}})
	require.Equal(t, []string{"ns-b/g6"}, names(a), "match[] selects rules by their labels")

	// Pages of three, in order, each naming the next.
	var paged []string
	q := url.Values{"group_limit": {"3"}}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 4)
		code, a = get("ws-1", rulesPath, q)
		require.Equal(t, http.StatusOK, code, a.Error)
		paged = append(paged, names(a)...)
		if a.Data.NextToken == "" {
			break
		}
		q.Set("group_next_token", a.Data.NextToken)
	}
	require.Equal(t, all, paged)

	// Refused as Prometheus refuses: by the front (pagination), or by the
	// rulers (filters), whose answer is passed on.
	for _, c := range []struct {
		q    url.Values
		want string
	}{
		{url.Values{"group_limit": {"0"}}, `invalid parameter "group_limit": group_limit needs to be greater than 0`},
		{url.Values{"group_next_token": {"x"}}, `invalid parameter "group_next_token": group_limit needs to be present in order to paginate over the groups`},
		{url.Values{"group_limit": {"1"}, "group_next_token": {"nope"}}, `invalid parameter "group_next_token": invalid group_next_token 'nope'. were rule groups changed?`},
		{url.Values{"type": {"both"}}, `invalid parameter "type": not supported value "both"`},
		{url.Values{"match[]": {"{"}}, "1:2: parse error"},
	} {
		code, a = get("ws-1", rulesPath, c.q)
		require.Equal(t, http.StatusBadRequest, code, c.q.Encode())
		require.Equal(t, "bad_data", a.ErrorType)
		require.Contains(t, a.Error, c.want)
	}

	// Alerts: every ruler's firing alerts (A1, A3, A5, A7 hold), after
	// their first evaluation.
	require.Eventually(t, func() bool {
		_, a = get("ws-1", alertsPath, nil)
		return len(a.Data.Alerts) == 4
	}, 10*time.Second, 50*time.Millisecond)
	for _, al := range a.Data.Alerts {
		require.Equal(t, "firing", al.State)
	}
	_, a = get("ws-1", rulesPath, url.Values{"exclude_alerts": {"true"}, "rule_name[]": {"A1"}})
	require.Len(t, a.Data.Groups, 1)
	require.Empty(t, a.Data.Groups[0].Rules[0].Alerts)
	_, a = get("ws-1", rulesPath, url.Values{"rule_name[]": {"A1"}})
	require.Len(t, a.Data.Groups[0].Rules[0].Alerts, 1)

	// Another workspace sees its own groups only; one with none, none.
	_, a = get("ws-2", rulesPath, nil)
	require.Equal(t, []string{"other/hidden"}, names(a))
	code, a = get("ws-3", rulesPath, nil)
	require.Equal(t, http.StatusOK, code)
	require.Empty(t, a.Data.Groups)
	_, a = get("ws-3", alertsPath, nil)
	require.NotNil(t, a.Data.Alerts)
	require.Empty(t, a.Data.Alerts)

	// A ruler that does not answer: no partial answer.
	failing = "b"
	code, a = get("ws-1", rulesPath, nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, a.Error, "ruler b did not answer")
}

// TestInternalRulesOnlyOverGRPC: the internal path answers only requests
// that came over the gRPC port.
func TestInternalRulesOnlyOverGRPC(t *testing.T) {
	rl := New(Config{EvaluationInterval: time.Minute, PollInterval: time.Hour, HandoffWait: -1}, staticFiles{}, noOffset{},
		promql.NewEngine(promql.EngineOpts{}), teststorage.New(t), &fakePusher{},
		twoRulers{}, fakeMember{services.NewIdleService(nil, nil), "a"}, prometheus.NewRegistry(), log.NewNopLogger())
	r := httptest.NewRequest(http.MethodGet, InternalPrefix+rulesPath, nil)
	r.Header.Set(workspaceHeader, "ws-1")
	w := httptest.NewRecorder()
	rl.Internal().ServeHTTP(w, r)
	require.Equal(t, http.StatusNotFound, w.Code)
}

// TestMergeListsAMovingGroupOnce: should two rulers answer for a group, the
// rules API lists the copy evaluated last; alerts are listed as the rulers
// answer them.
func TestMergeListsAMovingGroupOnce(t *testing.T) {
	older := json.RawMessage(`{"groups":[{"name":"g","file":"ns","lastEvaluation":"2026-01-01T00:00:00Z","rules":[{"name":"old"}]}]}`)
	newer := json.RawMessage(`{"groups":[{"name":"g","file":"ns","lastEvaluation":"2026-01-01T00:00:10Z","rules":[{"name":"new"}]}]}`)
	for _, answers := range [][]json.RawMessage{{older, newer}, {newer, older}} {
		out, err := mergeRules(answers, pageRequest{})
		require.NoError(t, err)
		b, err := json.Marshal(out)
		require.NoError(t, err)
		require.JSONEq(t, `{"groups":[{"name":"g","file":"ns","lastEvaluation":"2026-01-01T00:00:10Z","rules":[{"name":"new"}]}]}`, string(b))
	}
	// Two alerts with the same labels from two rules (on two rulers) are
	// two alerts, as Prometheus lists them.
	alert := json.RawMessage(`{"alerts":[{"labels":{"alertname":"A","x":"1"},"state":"firing"}]}`)
	out, err := mergeAlerts([]json.RawMessage{alert, alert})
	require.NoError(t, err)
	b, err := json.Marshal(out)
	require.NoError(t, err)
	require.JSONEq(t, `{"alerts":[{"labels":{"alertname":"A","x":"1"},"state":"firing"},{"labels":{"alertname":"A","x":"1"},"state":"firing"}]}`, string(b))
}

// TestRulesAPISlotsAreSharedByWorkspaces: one workspace's requests hold at
// most two of the process's slots at a time, its others waiting for its
// own, and refused with 429 when none frees in time, so that slow requests
// of one workspace do not hold back another's.
func TestRulesAPISlotsAreSharedByWorkspaces(t *testing.T) {
	api := NewAPI(twoRulers{}, nil, log.NewNopLogger())
	api.slotWait = 50 * time.Millisecond
	ctx := context.Background()
	var held []func()
	for range maxAPIRequestsPerWorkspace {
		release, err := api.acquire(ctx, "ws-slow")
		require.NoError(t, err)
		held = append(held, release)
	}

	// The slow workspace's next request waits, then is refused.
	_, err := api.acquire(ctx, "ws-slow")
	require.Equal(t, http.StatusTooManyRequests, apierror.StatusOf(err), "%v", err)
	require.Equal(t, apierror.IDWorkspaceRulesAPIConcurrency, apierror.From(err).ID)

	// The others take the process's remaining slots.
	for i := maxAPIRequestsPerWorkspace; i < maxAPIRequests; i++ {
		release, err := api.acquire(ctx, fmt.Sprint("ws-", i))
		require.NoError(t, err)
		held = append(held, release)
	}
	full, cancel := context.WithTimeout(ctx, 10*time.Millisecond) // before slotWait
	defer cancel()
	_, err = api.acquire(full, "ws-another")
	require.ErrorContains(t, err, "cancelled while waiting", "every slot of the process is taken")

	for _, release := range held {
		release()
	}
	release, err := api.acquire(ctx, "ws-slow")
	require.NoError(t, err, "released")
	release()
	require.Zero(t, api.slots.Keys(), "no workspace's slots kept once idle")
}

// TestRulesAPIWithoutRulers: with no ruler in the ring, Prometheus's API
// over no rules answers: empty lists, and its own refusals of bad filters.
func TestRulesAPIWithoutRulers(t *testing.T) {
	api := NewAPI(twoRulers{err: ring.ErrEmptyRing}, nil, log.NewNopLogger())
	get := func(path string, q url.Values) (int, apiAnswer, string) {
		r := httptest.NewRequest(http.MethodGet, path+"?"+q.Encode(), nil)
		r = r.WithContext(tenant.WithID(r.Context(), "ws-1"))
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		var a apiAnswer
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &a), w.Body.String())
		return w.Code, a, w.Body.String()
	}
	code, a, body := get(rulesPath, nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"groups":[]`)
	code, _, body = get(alertsPath, nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"alerts":[]`)
	for _, q := range []url.Values{{"type": {"bogus"}}, {"match[]": {"{"}}, {"exclude_alerts": {"maybe"}}} {
		code, a, body = get(rulesPath, q)
		require.Equal(t, http.StatusBadRequest, code, "%v: %s", q, body)
		require.Equal(t, "bad_data", a.ErrorType)
	}
}

// TestAlertsInTheRulersOrder: the alerts API lists the rulers' alerts in
// the order of the rulers, whichever answers first.
func TestAlertsInTheRulersOrder(t *testing.T) {
	api := NewAPI(twoRulers{}, func(inst ring.InstanceDesc) (Client, error) {
		return func(context.Context, *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error) {
			if inst.Id == "a" {
				time.Sleep(50 * time.Millisecond) // a answers last
			}
			body := fmt.Sprintf(`{"status":"success","data":{"alerts":[{"labels":{"alertname":"from-%s"},"state":"firing"}]}}`, inst.Id)
			return &httpgrpc.HTTPResponse{Code: http.StatusOK, Body: []byte(body)}, nil
		}, nil
	}, log.NewNopLogger())
	r := httptest.NewRequest(http.MethodGet, alertsPath, nil)
	r = r.WithContext(tenant.WithID(r.Context(), "ws-1"))
	w := httptest.NewRecorder()
	api.ServeHTTP(w, r)
	var a apiAnswer
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &a), w.Body.String())
	require.Len(t, a.Data.Alerts, 2)
	require.Equal(t, "from-a", a.Data.Alerts[0].Labels["alertname"])
	require.Equal(t, "from-b", a.Data.Alerts[1].Labels["alertname"])
}
