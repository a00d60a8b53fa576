package distributor

import (
	"slices"
	"strings"
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
}

// AMP's discard reasons for series the distributor rejects.
const (
	reasonMissingMetricName = "missing_metric_name"
	reasonInvalidMetricName = "metric_name_invalid"
	reasonInvalidLabel      = "label_invalid"
	reasonDuplicateLabel    = "duplicate_label_names"
	reasonTooManyLabels     = "max_label_names_per_series"
	reasonLabelNameTooLong  = "label_name_too_long"
	reasonLabelValueTooLong = "label_value_too_long"
	reasonLabelsTooLarge    = "labels_size_too_large"
)

// seriesLimits are one workspace's limits, resolved once per request.
type seriesLimits struct {
	maxLabels, maxName, maxValue, maxSize int
}

func resolveLimits(l Limits, workspace string) seriesLimits {
	return seriesLimits{
		maxLabels: l.MaxLabelNamesPerSeries(workspace),
		maxName:   l.MaxLabelNameLength(workspace),
		maxValue:  l.MaxLabelValueLength(workspace),
		maxSize:   l.MaxLabelsSizeBytes(workspace),
	}
}

// validationError is a rejected series with its discard reason.
type validationError struct {
	reason string
	err    error
}

func compareLabelNames(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) }

func isLegacyMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

func isLegacyLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

func seriesString(ls []prompb.Label) string {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	return b.Labels().String()
}

func bad(reason, id string, format string, args ...any) *validationError {
	return &validationError{reason: reason, err: apierror.New(apierror.BadData, id, format, args...)}
}

// validateSeries checks one series' labels against the workspace's limits,
// drops labels with empty values and sorts the rest by name, as ingesters
// expect them. It returns nil for a valid series.
func validateSeries(lim seriesLimits, ts *prompb.TimeSeries) *validationError {
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
	if name == "" {
		return bad(reasonMissingMetricName, apierror.IDMissingMetricName, "received a series without a metric name, series: '%s'", seriesString(ls))
	}
	if !isLegacyMetricName(name) {
		return bad(reasonInvalidMetricName, apierror.IDInvalidMetricName, "received a series with an invalid metric name: '%s'", name)
	}
	if max := lim.maxLabels; len(ls) > max {
		return bad(reasonTooManyLabels, apierror.IDTooManyLabels, "series has too many labels (actual: %d, limit: %d) series: '%s'", len(ls), max, seriesString(ls))
	}
	maxName, maxValue, maxSize := lim.maxName, lim.maxValue, lim.maxSize
	size := 0
	for i, l := range ls {
		if !isLegacyLabelName(l.Name) {
			return bad(reasonInvalidLabel, apierror.IDInvalidLabel, "received a series with an invalid label name: '%s' series: '%s'", l.Name, seriesString(ls))
		}
		if i > 0 && ls[i-1].Name == l.Name {
			return bad(reasonDuplicateLabel, apierror.IDDuplicateLabelNames, "received a series with duplicate label name, label: '%s' series: '%s'", l.Name, seriesString(ls))
		}
		if len(l.Name) > maxName {
			return bad(reasonLabelNameTooLong, apierror.IDLabelNameTooLong, "received a series whose label name length exceeds the limit (actual: %d, limit: %d), label: '%s' series: '%s'", len(l.Name), maxName, l.Name, seriesString(ls))
		}
		if len(l.Value) > maxValue {
			return bad(reasonLabelValueTooLong, apierror.IDLabelValueTooLong, "received a series whose label value length exceeds the limit (actual: %d, limit: %d), label: '%s' series: '%s'", len(l.Value), maxValue, l.Name, seriesString(ls))
		}
		if !utf8.ValidString(l.Value) {
			return bad(reasonInvalidLabel, apierror.IDInvalidLabel, "received a series with a label value that is not valid UTF-8, label: '%s'", l.Name)
		}
		size += len(l.Name) + len(l.Value)
	}
	if maxSize > 0 && size > maxSize {
		return bad(reasonLabelsTooLarge, apierror.IDLabelsTooLarge, "received a series whose labels are too large (actual: %d bytes, limit: %d bytes) series: '%s'", size, maxSize, seriesString(ls))
	}
	return nil
}
