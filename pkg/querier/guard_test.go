package querier

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/limits"
	"github.com/vigil-metrics/vigil/pkg/promqlshape"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// guardLimits are AMP's defaults, with blocked queries and (when set) a
// smaller expression size.
type guardLimits struct {
	blocked            []limits.BlockedQuery
	maxExpr, maxRegexp int
}

func (guardLimits) MaxQueryLength(string) time.Duration { return 32 * 24 * time.Hour }
func (g guardLimits) MaxQueryExpressionSizeBytes(string) int {
	if g.maxExpr > 0 {
		return g.maxExpr
	}
	return 1 << 20
}
func (guardLimits) MaxConcurrentQueries(string) int                  { return 0 }
func (guardLimits) MaxQueryExpressionDepth(string) int               { return 128 }
func (guardLimits) SamplesProcessedThresholds(string) (int64, int64) { return 0, 0 }
func (g guardLimits) MaxQueryRegexpSizeBytes(string) int {
	if g.maxRegexp > 0 {
		return g.maxRegexp
	}
	return 64 << 10
}
func (g guardLimits) QueryBlocked(_, expr string) bool {
	for _, b := range g.blocked {
		if b.Blocks(expr) {
			return true
		}
	}
	return false
}

func TestScanExpression(t *testing.T) {
	for _, tc := range []struct {
		expr                      string
		depth, longest, operators int
	}{
		{`up`, 0, 0, 0},
		{`sum(rate(http_requests_total{job="api"}[5m]))`, 3, 5, 0},
		{`count({__name__=~"a(b(c(d)))"})`, 2, 12, 0},
		{`label_replace(up, "x", "\"((((", "", "")`, 1, 8, 0},
		{"sum(up) # ((((((\n+ 1", 1, 0, 1},
		{"sum(`((((`)", 1, 6, 0},
		{`up{a="unterminated`, 1, 13, 0},
		{strings.Repeat("(", 10) + "1" + strings.Repeat(")", 10), 10, 0, 0},
		{`a + b - c * d / e % f ^ g`, 0, 0, 6},
		{`a == b != c >= d <= e > f < g`, 0, 0, 6},
		{`up{a!="x", b=~"y", c!~"z"} > 0`, 1, 3, 1},
		{`a and b or c unless d AND atan2`, 0, 0, 5},
		{`node_and_or_unless_total offset 5m`, 0, 0, 0},
		{`sum by (job) (rate(x[5m])) / ignoring(le) group_left sum(y)`, 3, 0, 1},
		{`-1 + 2e-3`, 0, 0, 3},
	} {
		sc := promqlshape.Scan(tc.expr, 1000)
		require.Equal(t, promqlshape.Shape{Depth: tc.depth, Longest: tc.longest, Operators: tc.operators}, sc, tc.expr)
	}
	require.Equal(t, 6, promqlshape.Scan(strings.Repeat("(", 100000), 5).Depth, "stops counting past the limit")
}

// TestGuardRefusesHostileQueriesBeforeParsing: each refusal with its
// status, ID and message; what is within the limits goes on.
func TestGuardRefusesHostileQueriesBeforeParsing(t *testing.T) {
	g := &guard{limits: guardLimits{maxExpr: 100_000, maxRegexp: 1000, blocked: []limits.BlockedQuery{{Pattern: "count(up)"}, {Pattern: `.*expensive_metric.*`, Regex: true}}}}
	deep := strings.Repeat("(", 40_000) + "1" + strings.Repeat(")", 40_000)
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name, path string
		form       url.Values
		status     int
		id, msg    string
	}{
		{"honest", "/api/v1/query", url.Values{"query": {`sum by (job) (rate(up[5m]))`}}, 0, "", ""},
		{"deep", "/api/v1/query", url.Values{"query": {deep}}, 422, apierror.IDQueryExpressionTooDeep,
			"the query expression is nested too deeply (more than 128 levels of parentheses, brackets or braces, -querier.max-query-expression-depth)"},
		{"deep format_query", "/api/v1/format_query", url.Values{"query": {deep}}, 422, apierror.IDQueryExpressionTooDeep, ""},
		{"large", "/api/v1/query", url.Values{"query": {"up or " + strings.Repeat("x", 100_000)}}, 422, apierror.IDQueryExpressionTooLarge,
			"the query expression is too large (size: 100006 bytes, limit: 100000 bytes, -querier.max-query-expression-size-bytes)"},
		{"blocked exactly", "/api/v1/query", url.Values{"query": {" count(up) "}}, 400, apierror.IDQueryBlocked,
			"the request has been blocked by the administrator of this workspace's limits (blocked_queries)"},
		{"blocked by a regex", "/api/v1/query_range", url.Values{"query": {`sum(expensive_metric)`}}, 400, apierror.IDQueryBlocked, ""},
		{"a large regex", "/api/v1/query", url.Values{"query": {`up{pod=~"` + strings.Repeat("a?", 500) + `"}`}}, 422, apierror.IDQueryRegexpTooLarge,
			"the query expression holds a string or regular expression too large (size: 1002 bytes, limit: 1000 bytes, -querier.max-query-regexp-size-bytes)"},
		{"a regex at the limit", "/api/v1/query", url.Values{"query": {`up{pod=~"` + strings.Repeat("x", 998) + `"}`}}, 0, "", ""},
		{"1,025 operators", "/api/v1/query", url.Values{"query": {strings.Repeat("up and ", 1025) + "up"}}, 422, apierror.IDQueryExpressionTooDeep,
			"the query expression has more than 1024 binary operators (8 times -querier.max-query-expression-depth)"},
		{"1,024 operators", "/api/v1/query", url.Values{"query": {strings.Repeat("up + ", 1024) + "up"}}, 0, "", ""},
		{"a large regex in match[]", "/api/v1/series", url.Values{"match[]": {`up`, `{job=~"` + strings.Repeat("x.", 501) + `"}`}}, 422, apierror.IDQueryRegexpTooLarge, ""},
		{"a deep match[]", "/api/v1/labels", url.Values{"match[]": {strings.Repeat("(", 200) + "up" + strings.Repeat(")", 200)}}, 422, apierror.IDQueryExpressionTooDeep, ""},
		{"a blocked query's selector in match[]", "/api/v1/series", url.Values{"match[]": {"count(up)"}}, 0, "", ""},
		{"not blocked", "/api/v1/query", url.Values{"query": {`count(up) + 1`}}, 0, "", ""},
		{"33 days", "/api/v1/query_range", url.Values{"query": {"up"}, "start": {"0"}, "end": {"2851200"}, "step": {"3600"}}, 422, apierror.IDMaxQueryLength,
			"the query time range exceeds the limit (query length: 33d, limit: 32d)"},
		{"32 days, RFC 3339", "/api/v1/query_range", url.Values{"query": {"up"}, "start": {now.Add(-32 * 24 * time.Hour).Format(time.RFC3339)}, "end": {now.Format(time.RFC3339)}, "step": {"60"}}, 0, "", ""},
		{"a week at step 60 s", "/api/v1/query_range", url.Values{"query": {"up"}, "start": {"0"}, "end": {"604800"}, "step": {"60"}}, 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				var r *http.Request
				if method == http.MethodGet {
					r = httptest.NewRequest(method, tc.path+"?"+tc.form.Encode(), nil)
				} else {
					r = httptest.NewRequest(method, tc.path, strings.NewReader(tc.form.Encode()))
					r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				r = r.WithContext(tenant.WithID(context.Background(), "ws-1"))
				err := g.check(httptest.NewRecorder(), r)
				if tc.status == 0 {
					require.NoError(t, err, method)
					continue
				}
				require.Equal(t, tc.status, apierror.StatusOf(err), "%s: %v", method, err)
				require.Equal(t, tc.id, apierror.From(err).ID)
				if tc.msg != "" {
					require.Equal(t, tc.msg, apierror.From(err).Msg)
				}
			}
		})
	}
}

// TestGuardBoundsTheRequest: a form over AMP's 1 MB request size is refused
// with 413 before more of it is read.
func TestGuardBoundsTheRequest(t *testing.T) {
	g := &guard{limits: guardLimits{}}
	body := "query=" + strings.Repeat("x", 2<<20)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/query", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r = r.WithContext(tenant.WithID(context.Background(), "ws-1"))
	err := g.check(httptest.NewRecorder(), r)
	require.Equal(t, http.StatusRequestEntityTooLarge, apierror.StatusOf(err), "%v", err)
}
