package frontend

import (
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// maxPoints is Prometheus's bound on the points of a range query's series:
// a query over it is passed through whole, to get Prometheus's own error.
const maxPoints = 11000

// rangeQuery is a parsed query_range request.
type rangeQuery struct {
	form             url.Values
	start, end, step int64 // milliseconds
	// fixedTime: the expression may read samples later than its steps (a
	// negative offset), so its legs are not cached.
	fixedTime bool
	userAgent string // the client's, told to the queriers (the query log)
}

// leg is one piece of a split range query: the steps of the query within
// one interval.
type leg struct{ start, end int64 }

// parseRangeQuery parses the parameters of a query_range request as
// Prometheus does; ok is false when it cannot be split (the querier then
// answers it whole, errors included).
func parseRangeQuery(form url.Values) (rangeQuery, bool) {
	start, ok1 := parseTime(form.Get("start"))
	end, ok2 := parseTime(form.Get("end"))
	step, ok3 := parseStep(form.Get("step"))
	if !ok1 || !ok2 || !ok3 || step <= 0 || end < start || (end-start)/step > maxPoints {
		return rangeQuery{}, false
	}
	expr := form.Get("query")
	if expr == "" || strings.Contains(expr, "@") {
		// start() and end() resolve to each leg's own bounds. The
		// expression is not parsed here (the querier's guard refuses the
		// costly ones before it parses them): any @ is passed through whole.
		return rangeQuery{}, false
	}
	return rangeQuery{form: form, start: start, end: end, step: step, fixedTime: negativeOffset.MatchString(expr)}, true
}

// splitByInterval cuts the steps start, start+step, ..., end into legs, one
// per interval (aligned to multiples of interval since the epoch) they
// fall into. Every step is in exactly one leg and each leg's bounds are
// steps of the query: evaluated alone, each gives the points the whole
// query gives at its steps.
func splitByInterval(start, end, step, interval int64) []leg {
	var legs []leg
	for s := start; s <= end; {
		boundary := (floorDiv(s, interval) + 1) * interval // next interval's start
		// The last step before the boundary, or end.
		e := s + (boundary-1-s)/step*step
		if e > end {
			e = s + (end-s)/step*step
		}
		legs = append(legs, leg{start: s, end: e})
		s = e + step
	}
	return legs
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// negativeOffset finds a negative offset modifier, conservatively (also in
// a string literal).
var negativeOffset = regexp.MustCompile(`(?i)offset\s*-`)

// parseTime parses a time as Prometheus's API does (Unix seconds with a
// fraction, or RFC 3339), in milliseconds.
func parseTime(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		sec, ns := math.Modf(t)
		ns = math.Round(ns*1000) / 1000
		if math.IsNaN(sec) || math.IsInf(sec, 0) || sec > math.MaxInt64/1e3 || sec < math.MinInt64/1e3 {
			return 0, false
		}
		return time.Unix(int64(sec), int64(ns*float64(time.Second))).UnixMilli(), true
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixMilli(), true
	}
	return 0, false
}

// parseStep parses a step as Prometheus's API does (seconds with a
// fraction, or a duration), in milliseconds.
func parseStep(s string) (int64, bool) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if ts > float64(math.MaxInt64) || ts < float64(math.MinInt64) || math.IsNaN(ts) {
			return 0, false
		}
		d := time.Duration(ts)
		// A step of a fraction of a millisecond is passed through whole.
		return d.Milliseconds(), d%time.Millisecond == 0
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d).Milliseconds(), true
	}
	return 0, false
}

// formatTime writes a millisecond time as Prometheus's API reads it back
// exactly.
func formatTime(ms int64) string {
	return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)
}
