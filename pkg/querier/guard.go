package querier

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/limits"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// GuardLimits are the per-workspace limits a query is checked against
// before it is parsed or waits for a slot.
type GuardLimits interface {
	MaxQueryLength(workspace string) time.Duration
	MaxQueryExpressionSizeBytes(workspace string) int
	MaxQueryExpressionDepth(workspace string) int
	MaxQueryRegexpSizeBytes(workspace string) int
	BlockedQueries(workspace string) []limits.BlockedQuery
	MaxConcurrentQueries(workspace string) int
	SamplesProcessedThresholds(workspace string) (warn, fail int64)
}

// maxQueryRequestBytes bounds a query request's form. AMP quota: request
// size (ingest or query) 1 MB.
const maxQueryRequestBytes = 1 << 20

// guard refuses, cheaply and before they are parsed or take a query slot,
// the queries a workspace's limits forbid: a request over AMP's 1 MB, an
// expression too large or nested too deeply (Prometheus's parser takes
// seconds over a deep one, outside the query timeout), a blocked query, a
// range query longer than AMP's 32 days.
type guard struct {
	limits  GuardLimits
	regexps sync.Map // pattern -> *regexp.Regexp, of the blocked queries
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
	if max := g.limits.MaxQueryExpressionSizeBytes(ws); max > 0 && len(expr) > max {
		return apierror.New(apierror.LimitExceeded, apierror.IDQueryExpressionTooLarge,
			"the query expression is too large (size: %d bytes, limit: %d bytes, -querier.max-query-expression-size-bytes)", len(expr), max)
	}
	maxDepth := g.limits.MaxQueryExpressionDepth(ws)
	depth, longest := scanExpression(expr, maxDepth)
	if maxDepth > 0 && depth > maxDepth {
		return apierror.New(apierror.LimitExceeded, apierror.IDQueryExpressionTooDeep,
			"the query expression is nested too deeply (more than %d levels of parentheses, brackets or braces, -querier.max-query-expression-depth)", maxDepth)
	}
	if max := g.limits.MaxQueryRegexpSizeBytes(ws); max > 0 && longest > max {
		return apierror.New(apierror.LimitExceeded, apierror.IDQueryRegexpTooLarge,
			"the query expression holds a string or regular expression too large (size: %d bytes, limit: %d bytes, -querier.max-query-regexp-size-bytes)", longest, max)
	}
	for _, b := range g.limits.BlockedQueries(ws) {
		if g.blocks(b, expr) {
			return apierror.New(apierror.BadData, apierror.IDQueryBlocked, "the request has been blocked by the administrator of this workspace's limits (blocked_queries)")
		}
	}
	return nil
}

// blocks tells whether b blocks expr: the same expression (but for spaces
// around it), or a match of the whole of it.
func (g *guard) blocks(b limits.BlockedQuery, expr string) bool {
	if !b.Regex {
		return strings.TrimSpace(expr) == strings.TrimSpace(b.Pattern)
	}
	re, ok := g.regexps.Load(b.Pattern)
	if !ok {
		compiled, err := regexp.Compile("^(?:" + b.Pattern + ")$")
		if err != nil {
			return false // validated when the limits were loaded
		}
		re, _ = g.regexps.LoadOrStore(b.Pattern, compiled)
	}
	return re.(*regexp.Regexp).MatchString(expr)
}

// scanExpression tells how deeply expr nests parentheses, brackets and
// braces outside string literals and comments, counted no further than past
// depthLimit (0: no limit), and the length of its longest string literal
// (quotes and escapes included): one pass, no allocation.
func scanExpression(expr string, depthLimit int) (deepest, longest int) {
	depth := 0
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; c {
		case '(', '[', '{':
			depth++
			if depth > deepest {
				deepest = depth
				if depthLimit > 0 && deepest > depthLimit {
					return deepest, longest
				}
			}
		case ')', ']', '}':
			if depth > 0 {
				depth--
			}
		case '"', '\'', '`':
			// A string: to its closing quote; backslashes escape in the
			// first two kinds.
			start := i
			for i++; i < len(expr) && expr[i] != c; i++ {
				if expr[i] == '\\' && c != '`' {
					i++
				}
			}
			longest = max(longest, min(i, len(expr)-1)-start+1)
		case '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		}
	}
	return deepest, longest
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
