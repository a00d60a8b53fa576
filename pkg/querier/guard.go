package querier

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/promqlshape"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// GuardLimits are the per-workspace limits a query is checked against
// before it is parsed or waits for a slot.
type GuardLimits interface {
	MaxQueryLength(workspace string) time.Duration
	MaxQueryExpressionSizeBytes(workspace string) int
	MaxQueryExpressionDepth(workspace string) int
	MaxQueryRegexpSizeBytes(workspace string) int
	QueryBlocked(workspace, expr string) bool
	MaxConcurrentQueries(workspace string) int
	SamplesProcessedThresholds(workspace string) (warn, fail int64)
}

// operatorsPerDepth is how many binary operators an expression may hold
// per level of -querier.max-query-expression-depth.
const operatorsPerDepth = 8

// maxQueryRequestBytes bounds a query request's form. AMP quota: request
// size (ingest or query) 1 MB.
const maxQueryRequestBytes = 1 << 20

// guard refuses, cheaply and before they are parsed or take a query slot,
// the queries a workspace's limits forbid: a request over AMP's 1 MB, an
// expression too large or nested too deeply (Prometheus's parser takes
// seconds over a deep one, outside the query timeout), a blocked query, a
// range query longer than AMP's 32 days.
type guard struct {
	limits GuardLimits
}

func (g *guard) check(w http.ResponseWriter, r *http.Request) error {
	ws, _ := tenant.ID(r.Context())
	r.Body = http.MaxBytesReader(w, r.Body, maxQueryRequestBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return apierror.New(apierror.TooLarge, apierror.IDRequestTooLarge, "request body too large: over the limit of %d bytes (AMP quota: request size 1 MB)", maxQueryRequestBytes)
		}
		return apierror.New(apierror.BadData, "", "invalid form: %v", err)
	}
	if expr := r.Form.Get("query"); expr != "" {
		if err := g.checkExpression(ws, expr); err != nil {
			return err
		}
	}
	// The series selectors of the series, labels and label values calls
	// are parsed too, and their regular expressions matched against every
	// label value.
	for _, m := range r.Form["match[]"] {
		if err := g.checkShape(ws, m); err != nil {
			return err
		}
	}
	if strings.HasSuffix(r.URL.Path, "/query_range") {
		if max := g.limits.MaxQueryLength(ws); max > 0 {
			start, okStart := parseTime(r.Form.Get("start"))
			end, okEnd := parseTime(r.Form.Get("end"))
			if okStart && okEnd && end.Sub(start) > max {
				return apierror.New(apierror.LimitExceeded, apierror.IDMaxQueryLength,
					"the query time range exceeds the limit (query length: %s, limit: %s)", model.Duration(end.Sub(start)), model.Duration(max))
			}
		}
	}
	return nil
}

func (g *guard) checkExpression(ws, expr string) error {
	if err := g.checkShape(ws, expr); err != nil {
		return err
	}
	if g.limits.QueryBlocked(ws, expr) {
		return apierror.New(apierror.BadData, apierror.IDQueryBlocked, "the request has been blocked by the administrator of this workspace's limits (blocked_queries)")
	}
	return nil
}

// checkShape checks an expression's size, nesting, operators and strings.
func (g *guard) checkShape(ws, expr string) error {
	if max := g.limits.MaxQueryExpressionSizeBytes(ws); max > 0 && len(expr) > max {
		return apierror.New(apierror.LimitExceeded, apierror.IDQueryExpressionTooLarge,
			"the query expression is too large (size: %d bytes, limit: %d bytes, -querier.max-query-expression-size-bytes)", len(expr), max)
	}
	maxDepth := g.limits.MaxQueryExpressionDepth(ws)
	sc := promqlshape.Scan(expr, maxDepth)
	if maxDepth > 0 && sc.Depth > maxDepth {
		return apierror.New(apierror.LimitExceeded, apierror.IDQueryExpressionTooDeep,
			"the query expression is nested too deeply (more than %d levels of parentheses, brackets or braces, -querier.max-query-expression-depth)", maxDepth)
	}
	// Prometheus's parser takes time that grows with the square of a chain
	// of binary operators (seconds for 20,000, five minutes for a megabyte
	// of "up and up and ..."); a syntax tree deeper than
	// the limit is refused once parsed anyway.
	if maxOps := operatorsPerDepth * maxDepth; maxDepth > 0 && sc.Operators > maxOps {
		return apierror.New(apierror.LimitExceeded, apierror.IDQueryExpressionTooDeep,
			"the query expression has more than %d binary operators (%d times -querier.max-query-expression-depth)", maxOps, operatorsPerDepth)
	}
	if max := g.limits.MaxQueryRegexpSizeBytes(ws); max > 0 && sc.Longest > max {
		return apierror.New(apierror.LimitExceeded, apierror.IDQueryRegexpTooLarge,
			"the query expression holds a string or regular expression too large (size: %d bytes, limit: %d bytes, -querier.max-query-regexp-size-bytes)", sc.Longest, max)
	}
	return nil
}

// parseTime reads a time as Prometheus's API takes it: seconds since the
// epoch (fractions allowed) or RFC 3339.
func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}
