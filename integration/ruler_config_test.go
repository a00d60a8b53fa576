package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// TestRulesConfigAPI: Cortex's and Mimir's rules configuration API, as
// mimirtool (at /prometheus/config/v1/rules) and cortextool (at
// /api/v1/rules) call it, lists, loads and deletes groups of the same
// stored namespaces as AMP's operations, and the ruler evaluates what it
// loads.
func TestRulesConfigAPI(t *testing.T) {
	// Its writes are control-plane operations, throttled as AMP's are
	// (10 per second per account): this test makes more.
	v := startMonolith(t, t.TempDir(), "-ruler.poll-interval=200ms", "-ruler.min-evaluation-interval=1s", "-auth.control-plane-rate-limit=1000")
	base := v.BaseURL()
	ws := createWorkspace(t, base, "config")
	do := func(method, path, body string) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("X-Scope-OrgID", ws)
		req.Header.Set("Content-Type", "application/yaml")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	const mimir = "/prometheus/config/v1/rules"

	code, _, body := do("GET", mimir, "")
	require.Equal(t, http.StatusNotFound, code)
	require.True(t, strings.HasPrefix(body, "no rule groups found"), body)

	// Load two groups into a namespace, then replace the first.
	code, _, body = do("POST", mimir+"/team-a", "name: sums\ninterval: 1s\nrules:\n  - record: job:up:sum\n    expr: sum(up) * 10\n")
	require.Equal(t, http.StatusAccepted, code, body)
	require.JSONEq(t, `{"status":"success","data":null,"errorType":"","error":""}`, body)
	code, _, body = do("POST", mimir+"/team-a", "name: counts\ninterval: 1s\nrules:\n  - record: job:up:count\n    expr: count(up)\n")
	require.Equal(t, http.StatusAccepted, code, body)
	code, _, body = do("POST", mimir+"/team-a", "name: sums\ninterval: 1s\nrules:\n  - record: job:up:sum\n    expr: sum(up)\n")
	require.Equal(t, http.StatusAccepted, code, body)

	// AMP's API sees the same namespace, its file holding both groups.
	resp, err := http.Get(workspaceURL(base, ws) + "/rulegroupsnamespaces/team-a")
	require.NoError(t, err)
	var desc struct {
		RuleGroupsNamespace struct {
			Data []byte `json:"data"`
		} `json:"ruleGroupsNamespace"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&desc))
	resp.Body.Close()
	require.Contains(t, string(desc.RuleGroupsNamespace.Data), "name: counts")
	require.Contains(t, string(desc.RuleGroupsNamespace.Data), "expr: sum(up)\n")

	// And a namespace created through AMP's API is listed by this one.
	createNamespace(t, base, ws, "from-amp", "groups:\n  - name: amp\n    rules:\n      - record: r\n        expr: vector(1)\n")
	code, ctype, body := do("GET", mimir, "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "application/yaml", ctype)
	var all map[string][]struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(body), &all))
	require.Len(t, all, 2)
	require.Equal(t, "sums", all["team-a"][0].Name)
	require.Equal(t, "sum(up)", all["team-a"][0].Rules[0].Expr, "replaced in place")
	require.Equal(t, "counts", all["team-a"][1].Name)
	require.Equal(t, "amp", all["from-amp"][0].Name)

	code, _, body = do("GET", "/api/v1/rules/team-a/counts", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "record: job:up:count")
	code, _, body = do("GET", mimir+"/team-a/nope", "")
	require.Equal(t, http.StatusNotFound, code)
	require.True(t, strings.HasPrefix(body, "group does not exist"), body)

	// The ruler evaluates what was loaded.
	ctx := context.Background()
	_, err = remoteWriter(t, workspaceURL(base, ws)+"/api/v1/remote_write").Store(ctx, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("up", map[string]string{"job": "a"}, prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1}),
	}}), 0)
	require.NoError(t, err)
	api := promClient(t, workspaceURL(base, ws))
	require.Eventually(t, func() bool {
		val, _, _, err := api.Query(ctx, "job:up:count", time.Now())
		vec, ok := val.(model.Vector)
		return err == nil && ok && len(vec) == 1
	}, 20*time.Second, 100*time.Millisecond)

	// Refused as the AMP operations refuse, and nothing changes.
	for _, bad := range []string{
		"name: broken\nrules:\n  - record: r\n    expr: sum(\n",
		"name: fast\ninterval: 100ms\nrules:\n  - record: r\n    expr: up\n",
		"name: sums\nrules:\n  - record: r\n    expr: up\n    unknown_field: 1\n",
		"rules:\n  - record: r\n    expr: up\n",
	} {
		code, _, body = do("POST", mimir+"/team-a", bad)
		require.Equal(t, http.StatusBadRequest, code, bad)
		require.NotEmpty(t, body)
	}
	code, _, body = do("GET", mimir+"/team-a/sums", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "expr: sum(up)")

	// Delete a group, then the namespace: a namespace left without groups
	// is gone.
	code, _, body = do("DELETE", mimir+"/team-a/sums", "")
	require.Equal(t, http.StatusAccepted, code, body)
	code, _, _ = do("GET", mimir+"/team-a/sums", "")
	require.Equal(t, http.StatusNotFound, code)
	code, _, body = do("DELETE", "/api/v1/rules/team-a", "")
	require.Equal(t, http.StatusAccepted, code, body)
	code, _, body = do("GET", mimir+"/team-a", "")
	require.Equal(t, http.StatusNotFound, code)
	require.True(t, strings.HasPrefix(body, "no rule groups found"), body)
	code, _, body = do("DELETE", mimir+"/team-a", "")
	require.Equal(t, http.StatusNotFound, code)
	require.True(t, strings.HasPrefix(body, "group namespace does not exist"), body)
	code, _, body = do("DELETE", mimir+"/team-a/sums", "")
	require.Equal(t, http.StatusNotFound, code)
	require.True(t, strings.HasPrefix(body, "group does not exist"), body)
	code, _, body = do("DELETE", mimir+"/from-amp/amp", "")
	require.Equal(t, http.StatusAccepted, code, body)
	resp, err = http.Get(workspaceURL(base, ws) + "/rulegroupsnamespaces/from-amp")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "its last group deleted, the namespace is gone")
}

// TestRulesConfigAPIAsksIAMForWhatAnEditDoes: loading a group into a new
// namespace creates it, and deleting a namespace's last group deletes it:
// a caller denied CreateRuleGroupsNamespace or DeleteRuleGroupsNamespace
// cannot do either through the rules configuration API, and the listing
// shows only the namespaces the caller may describe.
func TestRulesConfigAPIAsksIAMForWhatAnEditDoes(t *testing.T) {
	v, _ := startSigV4(t)
	base := v.BaseURL()
	ctx := context.Background()
	created, err := keyAdmin.amp(base).CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	ws := *created.WorkspaceId
	org := map[string]string{"X-Scope-OrgID": ws}
	const path = "/prometheus/config/v1/rules"
	group := func(name string) []byte {
		return []byte("name: " + name + "\nrules:\n  - record: r\n    expr: vector(1)\n")
	}
	for _, c := range []struct{ ns, group string }{{"open", "g1"}, {"open", "g2"}, {"secret", "s"}} {
		code, body := signedDo(t, keyAdmin, "POST", base+path+"/"+c.ns, org, group(c.group))
		require.Equal(t, http.StatusAccepted, code, body)
	}

	code, body := signedDo(t, keyRules, "GET", base+path, org, nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "open:")
	require.NotContains(t, body, "secret", "a namespace the caller may not describe is not listed")
	code, _ = signedDo(t, keyRules, "GET", base+path+"/secret", org, nil)
	require.Equal(t, http.StatusForbidden, code)

	code, body = signedDo(t, keyRules, "POST", base+path+"/fresh", org, group("g"))
	require.Equal(t, http.StatusForbidden, code, "creating a namespace needs aps:CreateRuleGroupsNamespace")
	require.Contains(t, body, "aps:CreateRuleGroupsNamespace")
	code, body = signedDo(t, keyRules, "POST", base+path+"/open", org, group("g3"))
	require.Equal(t, http.StatusAccepted, code, body)

	code, body = signedDo(t, keyRules, "DELETE", base+path+"/open/g1", org, nil)
	require.Equal(t, http.StatusAccepted, code, body)
	code, body = signedDo(t, keyRules, "DELETE", base+path+"/open/g2", org, nil)
	require.Equal(t, http.StatusAccepted, code, body)
	code, body = signedDo(t, keyRules, "DELETE", base+path+"/open/g3", org, nil)
	require.Equal(t, http.StatusForbidden, code, "deleting the last group deletes the namespace")
	require.Contains(t, body, "aps:DeleteRuleGroupsNamespace")
	code, body = signedDo(t, keyAdmin, "GET", base+path+"/open/g3", org, nil)
	require.Equal(t, http.StatusOK, code, body)

	// Two deletes of a namespace's two groups at once: whichever comes
	// second deletes the last group, which needs what the caller lacks,
	// whatever both saw when they arrived.
	for round := 0; round < 10; round++ {
		ns := fmt.Sprintf("pair-%d", round)
		for _, g := range []string{"g1", "g2"} {
			code, body := signedDo(t, keyAdmin, "POST", base+path+"/"+ns, org, group(g))
			require.Equal(t, http.StatusAccepted, code, body)
		}
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for i, g := range []string{"g1", "g2"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var body string
				codes[i], body = signedDo(t, keyRules, "DELETE", base+path+"/"+ns+"/"+g, org, nil)
				if codes[i] >= 500 {
					t.Log(body)
				}
			}()
		}
		wg.Wait()
		slices.Sort(codes)
		require.Equal(t, []int{http.StatusAccepted, http.StatusForbidden}, codes, "round %d", round)
		code, body := signedDo(t, keyAdmin, "GET", base+path+"/"+ns, org, nil)
		require.Equal(t, http.StatusOK, code, "round %d: the namespace outlives the caller who may not delete it: %s", round, body)
	}
}

// TestRulesConfigEditDecidedBeforeTheHandOver: with two control-plane
// replicas, an edit reaching the replica that does not own the account is
// decided there (the caller's IAM) and applied by the owner: creating or
// deleting a namespace through the rules configuration API is refused to a
// caller who may not, whichever replica it reaches, and a caller's own
// copy of the headers carrying the decision changes nothing.
func TestRulesConfigEditDecidedBeforeTheHandOver(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	require.NoError(t, os.WriteFile(creds, []byte(iamYAML), 0o600))
	replicas := startAPIReplicas(t, 2, "-auth.mode=sigv4", "-auth.credentials-file="+creds, "-auth.control-plane-rate-limit=1000")
	created, err := keyAdmin.amp(replicas[0].BaseURL()).CreateWorkspace(context.Background(), &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	org := map[string]string{"X-Scope-OrgID": *created.WorkspaceId}
	const path = "/prometheus/config/v1/rules"
	group := []byte("name: g\nrules:\n  - record: r\n    expr: vector(1)\n")
	for i, v := range replicas {
		ns := fmt.Sprintf("ns-%d", i)
		code, body := signedDo(t, keyRules, "POST", v.BaseURL()+path+"/"+ns, org, group)
		require.Equal(t, http.StatusForbidden, code, "replica %d: %s", i, body)
		require.Contains(t, body, "aps:CreateRuleGroupsNamespace")
		code, body = signedDo(t, keyAdmin, "POST", v.BaseURL()+path+"/"+ns, org, group)
		require.Equal(t, http.StatusAccepted, code, "replica %d: %s", i, body)
		forged := map[string]string{"X-Scope-OrgID": *created.WorkspaceId, "X-Vigil-Deny-Delete": "", "X-Vigil-Forwarded-Account": "111122223333"}
		code, body = signedDo(t, keyRules, "DELETE", v.BaseURL()+path+"/"+ns+"/g", forged, nil)
		require.Equal(t, http.StatusForbidden, code, "replica %d: %s", i, body)
		require.Contains(t, body, "aps:DeleteRuleGroupsNamespace")
		code, body = signedDo(t, keyAdmin, "GET", v.BaseURL()+path+"/"+ns+"/g", org, nil)
		require.Equal(t, http.StatusOK, code, "replica %d: %s", i, body)
	}
	require.Positive(t, forwardedRequests(t, replicas), "one replica handed its edits over")
	// A caller's own decision headers are dropped by the replica it
	// reaches, whichever: they neither grant nor deny.
	for i, v := range replicas {
		forged := map[string]string{"X-Scope-OrgID": *created.WorkspaceId, "X-Vigil-Deny-Delete": "forged", "X-Vigil-Deny-Create": "forged"}
		code, body := signedDo(t, keyAdmin, "DELETE", v.BaseURL()+path+fmt.Sprintf("/ns-%d/g", i), forged, nil)
		require.Equal(t, http.StatusAccepted, code, "replica %d: %s", i, body)
		code, body = signedDo(t, keyAdmin, "POST", v.BaseURL()+path+fmt.Sprintf("/new-%d", i), forged, group)
		require.Equal(t, http.StatusAccepted, code, "replica %d: %s", i, body)
	}
}
