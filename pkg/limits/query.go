package limits

import (
	"flag"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
)

// BlockedQuery refuses the queries of a workspace whose expression is
// Pattern, or matches it (anchored) when Regex is set.
type BlockedQuery struct {
	Pattern string `yaml:"pattern"`
	Regex   bool   `yaml:"regex"`
}

// blockedRegexps caches the compiled patterns of blocked queries.
var blockedRegexps sync.Map // pattern -> *regexp.Regexp

// Blocks tells whether b blocks expr: the same expression (but for spaces
// around it), or a match of the whole of it.
func (b BlockedQuery) Blocks(expr string) bool {
	if !b.Regex {
		return strings.TrimSpace(expr) == strings.TrimSpace(b.Pattern)
	}
	re, ok := blockedRegexps.Load(b.Pattern)
	if !ok {
		compiled, err := regexp.Compile("^(?:" + b.Pattern + ")$")
		if err != nil {
			return false // validated when the limits were loaded
		}
		re, _ = blockedRegexps.LoadOrStore(b.Pattern, compiled)
	}
	return re.(*regexp.Regexp).MatchString(expr)
}

// QueryBlocked tells whether one of the workspace's blocked_queries blocks
// expr.
func (o *Overrides) QueryBlocked(workspace, expr string) bool {
	for _, b := range o.BlockedQueries(workspace) {
		if b.Blocks(expr) {
			return true
		}
	}
	return false
}

// registerShapeFlags registers the limits checked before a query is parsed
// or run.
func (q *QuerierLimits) registerShapeFlags(f *flag.FlagSet) {
	q.MaxQueryLength = model.Duration(32 * 24 * time.Hour)
	f.Var(&q.MaxQueryLength, "querier.max-query-length", "Longest time range (end minus start) of a range query. AMP quota: query time range 32 days. 0: no limit.")
	f.IntVar(&q.MaxQueryExpressionSizeBytes, "querier.max-query-expression-size-bytes", 1<<20, "Largest PromQL expression accepted, in bytes, refused before it is parsed. AMP quota: request size 1 MB. 0: no limit.")
	f.IntVar(&q.MaxConcurrentQueries, "querier.max-concurrent-queries-per-workspace", 10, "Most queries of one workspace a querier evaluates at once (its -querier.max-concurrent slots are shared by every workspace); more wait for a slot of their workspace, holding none of the querier's, and get 429 after 30 s. 0: no bound.")
	f.IntVar(&q.MaxQueriersPerWorkspace, "query-frontend.max-queriers-per-workspace", 0, "Queriers among those connected to a query-frontend that take one workspace's queries, picked by shuffle sharding on the workspace: a workspace's flood of queries keeps the other queriers free. 0: all queriers.")
	f.IntVar(&q.MaxQueryExpressionDepth, "querier.max-query-expression-depth", 128, "Deepest nesting a PromQL expression may have: of parentheses, brackets and braces, refused before it is parsed (the parser's time grows with it), and of its parsed syntax tree (a chain of binary operators), refused before it is evaluated (evaluating it takes time that grows with the square of its depth). Dashboards rarely go past 10. 0: no limit.")
	f.IntVar(&q.MaxQueryRegexpSizeBytes, "querier.max-query-regexp-size-bytes", 64<<10, "Longest string literal of a PromQL expression, in bytes: a regular expression (compiling and matching one takes time that grows faster than its size) or a label value (which -validation.max-labels-size-bytes bounds far lower). Refused before it is parsed. 0: no limit.")
	f.Int64Var(&q.MaxSamplesProcessedWarningThreshold, "querier.max-samples-processed-warning-threshold", 0, "AMP's query samples processed (QSP) warning threshold: a query that processes more samples (totalQueryableSamples of stats=all) is answered with a warning. A request's max_samples_processed_warning_threshold parameter may set a lower one. 0: none.")
	f.Int64Var(&q.MaxSamplesProcessedErrorThreshold, "querier.max-samples-processed-error-threshold", 0, "AMP's query samples processed (QSP) error threshold: a query that processes more samples is stopped and answered 422. A request's max_samples_processed_error_threshold parameter may set a lower one. 0: none.")
}

func (q *QuerierLimits) validateShape() error {
	if q.MaxQueryLength < 0 || q.MaxQueryExpressionSizeBytes < 0 || q.MaxQueryExpressionDepth < 0 || q.MaxConcurrentQueries < 0 || q.MaxQueriersPerWorkspace < 0 ||
		q.MaxQueryRegexpSizeBytes < 0 || q.MaxSamplesProcessedWarningThreshold < 0 || q.MaxSamplesProcessedErrorThreshold < 0 {
		return fmt.Errorf("query shape limits must not be negative")
	}
	for _, b := range q.BlockedQueries {
		if b.Pattern == "" {
			return fmt.Errorf("a blocked query needs a pattern")
		}
		if b.Regex {
			if _, err := regexp.Compile(b.Pattern); err != nil {
				return fmt.Errorf("blocked query pattern %q: %w", b.Pattern, err)
			}
		}
	}
	return nil
}

// MaxQueryLength is the longest range query; 0: no limit.
func (o *Overrides) MaxQueryLength(workspace string) time.Duration {
	return time.Duration(o.get(workspace).Querier.MaxQueryLength)
}

// MaxQueryExpressionSizeBytes is the largest expression; 0: no limit.
func (o *Overrides) MaxQueryExpressionSizeBytes(workspace string) int {
	return o.get(workspace).Querier.MaxQueryExpressionSizeBytes
}

// MaxQueryExpressionDepth is the deepest nesting of an expression; 0: no limit.
func (o *Overrides) MaxQueryExpressionDepth(workspace string) int {
	return o.get(workspace).Querier.MaxQueryExpressionDepth
}

// MaxQueryRegexpSizeBytes is the longest string literal of an expression; 0: no limit.
func (o *Overrides) MaxQueryRegexpSizeBytes(workspace string) int {
	return o.get(workspace).Querier.MaxQueryRegexpSizeBytes
}

// SamplesProcessedThresholds are the workspace's QSP warning and error
// thresholds; 0: none.
func (o *Overrides) SamplesProcessedThresholds(workspace string) (warn, fail int64) {
	q := o.get(workspace).Querier
	return q.MaxSamplesProcessedWarningThreshold, q.MaxSamplesProcessedErrorThreshold
}

// BlockedQueries are the queries the workspace may not run.
func (o *Overrides) BlockedQueries(workspace string) []BlockedQuery {
	return o.get(workspace).Querier.BlockedQueries
}

// MaxConcurrentQueries is the most queries of the workspace one querier
// evaluates at once; 0: no bound.
func (o *Overrides) MaxConcurrentQueries(workspace string) int {
	return o.get(workspace).Querier.MaxConcurrentQueries
}

// MaxQueriersPerWorkspace is how many of the queriers connected to a
// query-frontend take the workspace's queries; 0: all.
func (o *Overrides) MaxQueriersPerWorkspace(workspace string) int {
	return o.get(workspace).Querier.MaxQueriersPerWorkspace
}
