package distributor

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// Limits are the per-workspace limits the distributor enforces.
type Limits interface {
	MaxLabelNamesPerSeries(workspace string) int
	MaxLabelsSizeBytes(workspace string) int
	MaxLabelNameLength(workspace string) int
	MaxLabelValueLength(workspace string) int
	CreationGracePeriod(workspace string) time.Duration
	PastGracePeriod(workspace string) time.Duration
	MaxMetadataLength(workspace string) int
	MaxMetadataPerMetric(workspace string) int
	RateLimits
	HALimits
}

// AMP's discard reasons for series the distributor rejects, and Mimir's for
// the checks AMP's list does not name.
const (
	reasonMissingMetricName = "missing_metric_name"
	reasonInvalidMetricName = "metric_name_invalid"
	reasonInvalidLabel      = "label_invalid"
	reasonDuplicateLabel    = "duplicate_label_names"
	reasonTooManyLabels     = "max_label_names_per_series"
	reasonLabelNameTooLong  = "label_name_too_long"
	reasonLabelValueTooLong = "label_value_too_long"
	reasonLabelsTooLarge    = "labels_size_too_large"
	reasonTooFarInFuture    = "too_far_in_future"
	reasonTooOld            = "greater_than_max_sample_age"
	reasonRateLimited       = "rate_limited"
	reasonMetadataTooLong   = "metadata_too_long"
	reasonTooManyMetadata   = "too_many_metadata_per_metric"
)

// seriesLimits are one workspace's limits, resolved once per request.
type seriesLimits struct {
	maxLabels, maxName, maxValue, maxSize int
	grace, pastGrace                      time.Duration
	// maxTime is the latest timestamp accepted (ms): now plus the grace;
	// minTime the earliest, now less the past grace (math.MinInt64: none).
	maxTime, minTime int64
	// Metadata: the longest field and the most entries per metric name (0: no limit).
	maxMetadataLength, maxMetadataPerMetric int
}

func resolveLimits(l Limits, workspace string, now time.Time) seriesLimits {
	grace, past := l.CreationGracePeriod(workspace), l.PastGracePeriod(workspace)
	lim := seriesLimits{
		maxLabels:            l.MaxLabelNamesPerSeries(workspace),
		maxName:              l.MaxLabelNameLength(workspace),
		maxValue:             l.MaxLabelValueLength(workspace),
		maxSize:              l.MaxLabelsSizeBytes(workspace),
		grace:                grace,
		pastGrace:            past,
		maxTime:              now.Add(grace).UnixMilli(),
		minTime:              math.MinInt64,
		maxMetadataLength:    l.MaxMetadataLength(workspace),
		maxMetadataPerMetric: l.MaxMetadataPerMetric(workspace),
	}
	if past > 0 {
		lim.minTime = now.Add(-past).UnixMilli()
	}
	return lim
}

// violation is why a series was rejected. Only the first violation of a
// request is turned into an error message: formatting one per invalid
// series would let a hostile request cost far more than its size.
type violation struct {
	reason string // "" for a valid series
	label  string // the offending label's name, where there is one
	actual int
}

func compareLabelNames(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) }

// validSorted tells in one pass whether labels are valid, sorted and
// without empty values, as Prometheus sends them: nearly every series. Any
// other series takes validateSeries's full path, which fixes it up and names
// what is wrong.
func validSorted(lim seriesLimits, ls []prompb.Label) bool {
	if len(ls) > lim.maxLabels {
		return false
	}
	size := 0
	name := ""
	for i := range ls {
		l := &ls[i]
		if l.Value == "" || (i > 0 && l.Name <= ls[i-1].Name) || len(l.Name) > lim.maxName || len(l.Value) > lim.maxValue ||
			!isLegacyLabelName(l.Name) || !utf8.ValidString(l.Value) {
			return false
		}
		if l.Name == labels.MetricName {
			name = l.Value
		}
		size += len(l.Name) + len(l.Value)
	}
	return name != "" && isLegacyMetricName(name) && (lim.maxSize <= 0 || size <= lim.maxSize)
}

// nameChars classifies the bytes of legacy names: firstChar may start a
// label name, nextChar may follow, and metricChar may be anywhere in a
// metric name (which also takes colons).
var nameChars = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
			t[c] = firstChar | nextChar | metricChar
		case c >= '0' && c <= '9':
			t[c] = nextChar
		case c == ':':
			t[c] = metricChar
		}
	}
	return t
}()

const (
	firstChar = 1 << iota
	nextChar
	metricChar
)

func isLegacyMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := nameChars[s[i]]; c&metricChar == 0 && (i == 0 || c&nextChar == 0) {
			return false
		}
	}
	return true
}

func isLegacyLabelName(s string) bool {
	if s == "" || nameChars[s[0]]&firstChar == 0 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if nameChars[s[i]]&nextChar == 0 {
			return false
		}
	}
	return true
}

// maxSeriesInMessage bounds how much of a series an error message quotes.
const maxSeriesInMessage = 256

func seriesString(ls []prompb.Label) string {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	s := b.Labels().String()
	if len(s) > maxSeriesInMessage {
		s = s[:maxSeriesInMessage] + "…"
	}
	return s
}

// validateSeries checks one series' labels against the workspace's limits,
// drops labels with empty values and sorts the rest by name, as ingesters
// expect them. It returns the zero violation for a valid series, and
// whether it changed the labels.
func validateSeries(lim seriesLimits, ts *prompb.TimeSeries) (v violation, changed bool) {
	if validSorted(lim, ts.Labels) {
		return violation{}, false
	}
	return validateFull(lim, ts)
}

// validateFull is validateSeries for a series that is not valid and sorted
// as it came.
func validateFull(lim seriesLimits, ts *prompb.TimeSeries) (v violation, changed bool) {
	// One pass finds what needs fixing up first: labels with an empty value
	// (the same as no label in Prometheus: dropped, not stored), labels out of
	// order (Prometheus sends them sorted), and the metric name.
	ls := ts.Labels
	sorted, empty := true, false
	var name string
	for i := range ls {
		if ls[i].Value == "" {
			empty = true
		}
		if i > 0 && ls[i].Name < ls[i-1].Name {
			sorted = false
		}
		if ls[i].Name == labels.MetricName && ls[i].Value != "" {
			name = ls[i].Value
		}
	}
	if empty {
		ls = slices.DeleteFunc(ls, func(l prompb.Label) bool { return l.Value == "" })
		ts.Labels = ls
	}
	if !sorted {
		slices.SortFunc(ls, compareLabelNames)
	}
	changed = empty || !sorted
	if name == "" {
		return violation{reason: reasonMissingMetricName}, changed
	}
	if !isLegacyMetricName(name) {
		return violation{reason: reasonInvalidMetricName}, changed
	}
	if len(ls) > lim.maxLabels {
		return violation{reason: reasonTooManyLabels, actual: len(ls)}, changed
	}
	size := 0
	for i, l := range ls {
		switch {
		case !isLegacyLabelName(l.Name):
			return violation{reason: reasonInvalidLabel, label: l.Name}, changed
		case i > 0 && ls[i-1].Name == l.Name:
			return violation{reason: reasonDuplicateLabel, label: l.Name}, changed
		case len(l.Name) > lim.maxName:
			return violation{reason: reasonLabelNameTooLong, label: l.Name, actual: len(l.Name)}, changed
		case len(l.Value) > lim.maxValue:
			return violation{reason: reasonLabelValueTooLong, label: l.Name, actual: len(l.Value)}, changed
		case !utf8.ValidString(l.Value):
			return violation{reason: reasonInvalidLabel, label: l.Name, actual: -1}, changed
		}
		size += len(l.Name) + len(l.Value)
	}
	if lim.maxSize > 0 && size > lim.maxSize {
		return violation{reason: reasonLabelsTooLarge, actual: size}, changed
	}
	return violation{}, changed
}

// err formats the violation of the series whose labels are ls.
func (v violation) err(lim seriesLimits, ls []prompb.Label) error {
	bad := func(id, format string, args ...any) error {
		return apierror.New(apierror.BadData, id, format, args...)
	}
	switch v.reason {
	case reasonMissingMetricName:
		return bad(apierror.IDMissingMetricName, "received a series without a metric name, series: '%s'", seriesString(ls))
	case reasonInvalidMetricName:
		return bad(apierror.IDInvalidMetricName, "received a series with an invalid metric name: '%s'", truncate(metricName(ls)))
	case reasonTooManyLabels:
		return bad(apierror.IDTooManyLabels, "series has too many labels (actual: %d, limit: %d) series: '%s'", v.actual, lim.maxLabels, seriesString(ls))
	case reasonInvalidLabel:
		if v.actual < 0 {
			return bad(apierror.IDInvalidLabel, "received a series with a label value that is not valid UTF-8, label: '%s'", truncate(v.label))
		}
		return bad(apierror.IDInvalidLabel, "received a series with an invalid label name: '%s' series: '%s'", truncate(v.label), seriesString(ls))
	case reasonDuplicateLabel:
		return bad(apierror.IDDuplicateLabelNames, "received a series with duplicate label name, label: '%s' series: '%s'", truncate(v.label), seriesString(ls))
	case reasonLabelNameTooLong:
		return bad(apierror.IDLabelNameTooLong, "received a series whose label name length exceeds the limit (actual: %d, limit: %d), label: '%s' series: '%s'", v.actual, lim.maxName, truncate(v.label), seriesString(ls))
	case reasonLabelValueTooLong:
		return bad(apierror.IDLabelValueTooLong, "received a series whose label value length exceeds the limit (actual: %d, limit: %d), label: '%s' series: '%s'", v.actual, lim.maxValue, truncate(v.label), seriesString(ls))
	case reasonLabelsTooLarge:
		return bad(apierror.IDLabelsTooLarge, "received a series whose labels are too large (actual: %d bytes, limit: %d bytes) series: '%s'", v.actual, lim.maxSize, seriesString(ls))
	}
	return fmt.Errorf("series rejected: %s", v.reason)
}

func metricName(ls []prompb.Label) string {
	for _, l := range ls {
		if l.Name == labels.MetricName {
			return l.Value
		}
	}
	return ""
}

func truncate(s string) string {
	if len(s) > maxSeriesInMessage {
		return s[:maxSeriesInMessage] + "…"
	}
	return s
}

// dropOutOfRange removes the samples, histograms and exemplars of ts
// stamped later than lim.maxTime (one such sample would move the TSDB head
// forward and get every normal sample of the workspace refused as too old)
// or earlier than lim.minTime (AMP ingests no sample older than an hour).
// It returns how many samples and histograms it dropped each way, the
// timestamp of the first of each, and how many exemplars each way.
func dropOutOfRange(lim seriesLimits, ts *prompb.TimeSeries) (future, old int, firstFuture, firstOld int64, exFuture, exOld int) {
	if inRange(lim, ts) {
		return 0, 0, 0, 0, 0, 0 // nearly every series: one pass, no calls
	}
	note := func(t int64) {
		if t > lim.maxTime {
			if future == 0 {
				firstFuture = t
			}
			future++
			return
		}
		if old == 0 {
			firstOld = t
		}
		old++
	}
	out := func(t int64) bool { return t > lim.maxTime || t < lim.minTime }
	ts.Samples = dropWhere(ts.Samples, out, func(s prompb.Sample) int64 { return s.Timestamp }, note)
	ts.Histograms = dropWhere(ts.Histograms, out, func(h prompb.Histogram) int64 { return h.Timestamp }, note)
	ts.Exemplars = dropWhere(ts.Exemplars, out, func(e prompb.Exemplar) int64 { return e.Timestamp }, func(t int64) {
		if t > lim.maxTime {
			exFuture++
		} else {
			exOld++
		}
	})
	return future, old, firstFuture, firstOld, exFuture, exOld
}

// inRange tells whether every sample, histogram and exemplar of ts is
// stamped within the limits.
func inRange(lim seriesLimits, ts *prompb.TimeSeries) bool {
	for i := range ts.Samples {
		if t := ts.Samples[i].Timestamp; t > lim.maxTime || t < lim.minTime {
			return false
		}
	}
	for i := range ts.Histograms {
		if t := ts.Histograms[i].Timestamp; t > lim.maxTime || t < lim.minTime {
			return false
		}
	}
	for i := range ts.Exemplars {
		if t := ts.Exemplars[i].Timestamp; t > lim.maxTime || t < lim.minTime {
			return false
		}
	}
	return true
}

// dropWhere removes the elements of s whose stamp is out, telling note
// the timestamp of each. It does not touch s when none is.
func dropWhere[T any](s []T, out func(int64) bool, stamp func(T) int64, note func(int64)) []T {
	for i := range s {
		if out(stamp(s[i])) {
			return slices.DeleteFunc(s, func(e T) bool {
				if t := stamp(e); out(t) {
					note(t)
					return true
				}
				return false
			})
		}
	}
	return s
}

// futureErr formats the rejection of a sample stamped too far ahead.
func futureErr(lim seriesLimits, ls []prompb.Label, t int64) error {
	return apierror.New(apierror.BadData, apierror.IDTooFarInFuture,
		"received a sample whose timestamp is too far in the future (more than %s ahead, -validation.creation-grace-period), timestamp: %s series: '%s'",
		lim.grace, time.UnixMilli(t).UTC().Format(time.RFC3339Nano), seriesString(ls))
}

// tooOldErr formats the rejection of a sample stamped too far back.
func tooOldErr(lim seriesLimits, ls []prompb.Label, t int64) error {
	return apierror.New(apierror.BadData, apierror.IDSampleTooOld,
		"received a sample whose timestamp is too old (more than %s before now, -validation.past-grace-period), timestamp: %s series: '%s'",
		lim.pastGrace, time.UnixMilli(t).UTC().Format(time.RFC3339Nano), seriesString(ls))
}
