package querier

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Query parameters of AMP's QueryMetrics that set the query samples
// processed (QSP) thresholds of one query.
const (
	paramQSPWarning = "max_samples_processed_warning_threshold"
	paramQSPError   = "max_samples_processed_error_threshold"
)

// qspThresholds are one query's samples-processed thresholds; 0: none.
type qspThresholds struct{ warn, fail int64 }

type qspKey struct{}

func withQSPThresholds(ctx context.Context, t qspThresholds) context.Context {
	return context.WithValue(ctx, qspKey{}, t)
}

func qspThresholdsFrom(ctx context.Context) qspThresholds {
	t, _ := ctx.Value(qspKey{}).(qspThresholds)
	return t
}

// requestQSPThresholds are the thresholds of a query: the workspace's,
// lowered by the request's parameters (a request cannot raise them).
func requestQSPThresholds(form url.Values, warn, fail int64) (qspThresholds, error) {
	lower := func(param string, limit int64) (int64, error) {
		s := form.Get(param)
		if s == "" {
			return limit, nil
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			return 0, apierror.New(apierror.BadData, "", "invalid parameter %q: %q is not a positive integer", param, s)
		}
		if limit > 0 {
			v = min(v, limit)
		}
		return v, nil
	}
	var t qspThresholds
	var err error
	if t.warn, err = lower(paramQSPWarning, warn); err != nil {
		return t, err
	}
	t.fail, err = lower(paramQSPError, fail)
	return t, err
}

// errSamplesProcessed is the refusal of a query past its QSP error
// threshold.
func errSamplesProcessed(limit int64) error {
	return apierror.New(apierror.LimitExceeded, apierror.IDQuerySamplesProcessed,
		"the query processed more samples than its error threshold allows (limit: %d samples, %s)", limit, paramQSPError)
}

// guardedEngine refuses what can only be seen once an expression is
// parsed, before it is evaluated: a syntax tree deeper than the workspace's
// limit (a chain of thousands of binary operators has no parentheses, yet
// its evaluation takes time that grows with the square of its depth). And
// it applies the query's QSP thresholds: a warning in the answer above the
// first, a refusal above the second.
type guardedEngine struct {
	promql.QueryEngine
	limits GuardLimits
	log    QueryLogger // nil: no query log
}

// QueryLogger is told of every query evaluated, to log the ones its
// workspace's query logging configuration selects.
type QueryLogger interface {
	LogQuery(ctx context.Context, workspace string, q LoggedQuery)
}

// LoggedQuery is one evaluated query, as the query log records it.
type LoggedQuery struct {
	Query string
	// Start and End bound a range query; an instant query has both at its
	// evaluation time. Step is 0 for an instant query.
	Start, End time.Time
	Step       time.Duration
	// SamplesProcessed is the query's QSP (totalQueryableSamples); Series
	// the series its selectors read (a series read by two selectors counts
	// twice).
	SamplesProcessed, Series int64
	Duration                 time.Duration
	UserAgent                string
}

type userAgentKey struct{}

func withUserAgent(ctx context.Context, ua string) context.Context {
	return context.WithValue(ctx, userAgentKey{}, ua)
}

func (e *guardedEngine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	qry, err := e.QueryEngine.NewInstantQuery(ctx, q, opts, qs, ts)
	if err != nil {
		return nil, err
	}
	return e.guard(ctx, qry), nil
}

func (e *guardedEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	qry, err := e.QueryEngine.NewRangeQuery(ctx, q, opts, qs, start, end, interval)
	if err != nil {
		return nil, err
	}
	return e.guard(ctx, qry), nil
}

func (e *guardedEngine) guard(ctx context.Context, qry promql.Query) promql.Query {
	ws, _ := tenant.ID(ctx)
	if max := e.limits.MaxQueryExpressionDepth(ws); max > 0 {
		if stmt, ok := qry.Statement().(*parser.EvalStmt); ok && treeDepth(stmt.Expr, max) > max {
			return &guardedQuery{Query: qry, refusal: apierror.New(apierror.LimitExceeded, apierror.IDQueryExpressionTooDeep,
				"the query expression is nested too deeply (its syntax tree is deeper than %d levels, -querier.max-query-expression-depth)", max)}
		}
	}
	if t := qspThresholdsFrom(ctx); t != (qspThresholds{}) || e.log != nil {
		return &guardedQuery{Query: qry, qsp: t, log: e.log, workspace: ws}
	}
	return qry
}

// treeDepth is the depth of n's syntax tree (the most nodes from n to a
// leaf, a call's argument list not counted), counted no deeper than past
// room: it never recurses further, and visits each node at most once.
func treeDepth(n parser.Node, room int) int {
	own := 1
	if _, ok := n.(parser.Expressions); ok {
		own = 0
	}
	if own > room {
		return own
	}
	deepest := 0
	for c := range parser.ChildrenIter(n) {
		deepest = max(deepest, treeDepth(c, room-own))
		if own+deepest > room {
			break
		}
	}
	return own + deepest
}

// guardedQuery is a query refused before it runs, or run within its QSP
// thresholds.
type guardedQuery struct {
	promql.Query
	refusal   error
	qsp       qspThresholds
	log       QueryLogger
	workspace string
}

func (q *guardedQuery) Exec(ctx context.Context) *promql.Result {
	if q.refusal != nil {
		return &promql.Result{Err: q.refusal}
	}
	// The thresholds compare with the engine's own count, the one a query's
	// stats report and AMP charges, known once the query is evaluated. A
	// count of the samples the reads return cannot stop it earlier without
	// refusing honest queries: an instant selector reads every sample of a
	// step's lookback, the engine counts one; each replica's copy is read
	// before the merge. The cost of a query until then is bounded by the
	// fetched-samples limit and the timeout.
	start := time.Now()
	res := q.Query.Exec(withQSPThresholds(ctx, q.qsp))
	var processed, series int64
	if st := q.Stats(); st != nil && st.Samples != nil {
		processed, series = st.Samples.TotalSamples, st.Samples.TotalSeries
	}
	if q.log != nil {
		q.logQuery(ctx, processed, series, time.Since(start))
	}
	if res.Err != nil {
		return res
	}
	if q.qsp.fail > 0 && processed > q.qsp.fail {
		return &promql.Result{Err: errSamplesProcessed(q.qsp.fail)}
	}
	if q.qsp.warn > 0 && processed > q.qsp.warn {
		res.Warnings = res.Warnings.Add(fmt.Errorf("the query processed %d samples, more than its warning threshold of %d (%s)", processed, q.qsp.warn, paramQSPWarning))
	}
	return res
}

// logQuery tells the query log of the query, whether it succeeded or not
// (a query stopped at its error threshold has processed what it read).
func (q *guardedQuery) logQuery(ctx context.Context, processed, series int64, took time.Duration) {
	lq := LoggedQuery{Query: q.String(), SamplesProcessed: processed, Series: series, Duration: took}
	if stmt, ok := q.Statement().(*parser.EvalStmt); ok {
		lq.Start, lq.End, lq.Step = stmt.Start, stmt.End, stmt.Interval
	}
	lq.UserAgent, _ = ctx.Value(userAgentKey{}).(string)
	q.log.LogQuery(ctx, q.workspace, lq)
}
