//go:build e2e

package integration

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// decodeValue turns the result of a query API answer back into the value
// Prometheus's engine returned.
func decodeValue(resultType string, raw json.RawMessage) (parser.Value, error) {
	switch resultType {
	case "scalar", "string":
		var p []any
		if err := json.Unmarshal(raw, &p); err != nil || len(p) != 2 {
			return nil, fmt.Errorf("decode %s %s: %v", resultType, raw, err)
		}
		t, s := jsonTime(p[0]), fmt.Sprint(p[1])
		if resultType == "string" {
			return promql.String{T: t, V: s}, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		return promql.Scalar{T: t, V: f}, err
	case "vector":
		var rs []struct {
			Metric    map[string]string `json:"metric"`
			Value     []any             `json:"value"`
			Histogram []json.RawMessage `json:"histogram"`
		}
		if err := json.Unmarshal(raw, &rs); err != nil {
			return nil, fmt.Errorf("decode vector: %w", err)
		}
		vec := make(promql.Vector, 0, len(rs))
		for _, r := range rs {
			s := promql.Sample{Metric: labels.FromMap(r.Metric)}
			var err error
			if r.Histogram != nil {
				s.T, s.H, err = decodeHistogramPoint(r.Histogram)
			} else {
				s.T, s.F, err = decodeFloatPoint(r.Value)
			}
			if err != nil {
				return nil, err
			}
			vec = append(vec, s)
		}
		return vec, nil
	case "matrix":
		var rs []struct {
			Metric     map[string]string   `json:"metric"`
			Values     [][]any             `json:"values"`
			Histograms [][]json.RawMessage `json:"histograms"`
		}
		if err := json.Unmarshal(raw, &rs); err != nil {
			return nil, fmt.Errorf("decode matrix: %w", err)
		}
		mat := make(promql.Matrix, 0, len(rs))
		for _, r := range rs {
			s := promql.Series{Metric: labels.FromMap(r.Metric)}
			for _, v := range r.Values {
				t, f, err := decodeFloatPoint(v)
				if err != nil {
					return nil, err
				}
				s.Floats = append(s.Floats, promql.FPoint{T: t, F: f})
			}
			for _, v := range r.Histograms {
				t, h, err := decodeHistogramPoint(v)
				if err != nil {
					return nil, err
				}
				s.Histograms = append(s.Histograms, promql.HPoint{T: t, H: h})
			}
			mat = append(mat, s)
		}
		return mat, nil
	}
	return nil, fmt.Errorf("unknown result type %q", resultType)
}

// jsonTime converts the API's seconds (a JSON number) to milliseconds.
func jsonTime(v any) int64 {
	f, _ := v.(float64)
	return int64(math.Round(f * 1000))
}

func decodeFloatPoint(p []any) (int64, float64, error) {
	if len(p) != 2 {
		return 0, 0, fmt.Errorf("decode sample %v", p)
	}
	f, err := strconv.ParseFloat(fmt.Sprint(p[1]), 64)
	return jsonTime(p[0]), f, err
}

func decodeHistogramPoint(p []json.RawMessage) (int64, *histogram.FloatHistogram, error) {
	if len(p) != 2 {
		return 0, nil, fmt.Errorf("decode histogram sample %s", p)
	}
	var t float64
	var h struct {
		Count   string  `json:"count"`
		Sum     string  `json:"sum"`
		Buckets [][]any `json:"buckets"`
	}
	if err := json.Unmarshal(p[0], &t); err != nil {
		return 0, nil, err
	}
	if err := json.Unmarshal(p[1], &h); err != nil {
		return 0, nil, err
	}
	fh, err := rebuildHistogram(h.Count, h.Sum, h.Buckets)
	return jsonTime(t), fh, err
}

// jsonBucket is a bucket as the API lists it.
type jsonBucket struct {
	rule          int // 0: (lo,hi], 1: [lo,hi), 2: (lo,hi), 3: [lo,hi]
	lo, hi, count float64
}

// rebuildHistogram rebuilds a float histogram from the API's rendering,
// which lists the populated buckets with their boundaries only. The schema
// is inferred from the boundaries (custom buckets when they are not powers
// of two of one schema; 0 without populated buckets), the zero threshold
// from the zero bucket (0 without a populated one). The counter reset hint
// is not rendered at all.
func rebuildHistogram(count, sum string, raw [][]any) (*histogram.FloatHistogram, error) {
	fh := &histogram.FloatHistogram{}
	var err error
	if fh.Count, err = strconv.ParseFloat(count, 64); err != nil {
		return nil, err
	}
	if fh.Sum, err = strconv.ParseFloat(sum, 64); err != nil {
		return nil, err
	}
	var buckets []jsonBucket
	for _, r := range raw {
		if len(r) != 4 {
			return nil, fmt.Errorf("decode bucket %v", r)
		}
		b := jsonBucket{rule: int(r[0].(float64))}
		for i, f := range []*float64{&b.lo, &b.hi, &b.count} {
			if *f, err = strconv.ParseFloat(fmt.Sprint(r[i+1]), 64); err != nil {
				return nil, err
			}
		}
		if b.rule == 3 && b.lo == -b.hi && !math.IsInf(b.hi, 0) {
			fh.ZeroThreshold, fh.ZeroCount = b.hi, b.count
			continue
		}
		buckets = append(buckets, b)
	}
	schema, ok := inferSchema(buckets)
	if !ok {
		return customBucketHistogram(fh, buckets), nil
	}
	fh.Schema = schema
	var pos, neg []indexedCount
	scale := math.Exp2(float64(schema))
	for _, b := range buckets {
		if b.hi > 0 {
			pos = append(pos, indexedCount{int32(math.Round(math.Log2(b.hi) * scale)), b.count})
		} else {
			neg = append(neg, indexedCount{int32(math.Round(math.Log2(-b.lo) * scale)), b.count})
		}
	}
	fh.PositiveSpans, fh.PositiveBuckets = spansOf(pos)
	fh.NegativeSpans, fh.NegativeBuckets = spansOf(neg)
	return fh, nil
}

// inferSchema finds the exponential schema whose bucket boundaries all
// buckets have; false if there is none (custom buckets).
func inferSchema(buckets []jsonBucket) (int32, bool) {
	schema, found := int32(0), false
	for _, b := range buckets {
		lo, hi := math.Abs(b.lo), math.Abs(b.hi)
		if lo > hi {
			lo, hi = hi, lo
		}
		if lo == 0 || math.IsInf(hi, 0) {
			return 0, false
		}
		s := -math.Log2(math.Log2(hi / lo))
		rs := math.Round(s)
		if math.Abs(s-rs) > 1e-6 || rs < float64(histogram.ExponentialSchemaMin) || rs > float64(histogram.ExponentialSchemaMax) {
			return 0, false
		}
		idx := math.Log2(hi) * math.Exp2(rs)
		if math.Abs(idx-math.Round(idx)) > 1e-6 || (found && int32(rs) != schema) {
			return 0, false
		}
		schema, found = int32(rs), true
	}
	return schema, true
}

// customBucketHistogram fills fh as a histogram of custom buckets whose
// bounds are those the populated buckets show.
func customBucketHistogram(fh *histogram.FloatHistogram, buckets []jsonBucket) *histogram.FloatHistogram {
	fh.Schema = histogram.CustomBucketsSchema
	for _, b := range buckets {
		for _, f := range []float64{b.lo, b.hi} {
			if !math.IsInf(f, 0) && !slices.Contains(fh.CustomValues, f) {
				fh.CustomValues = append(fh.CustomValues, f)
			}
		}
	}
	slices.Sort(fh.CustomValues)
	var pos []indexedCount
	for _, b := range buckets {
		i := len(fh.CustomValues)
		if !math.IsInf(b.hi, 1) {
			i = slices.Index(fh.CustomValues, b.hi)
		}
		pos = append(pos, indexedCount{int32(i), b.count})
	}
	fh.PositiveSpans, fh.PositiveBuckets = spansOf(pos)
	return fh
}

type indexedCount struct {
	index int32
	count float64
}

// spansOf returns the spans and counts of buckets at the given indexes.
func spansOf(bs []indexedCount) ([]histogram.Span, []float64) {
	slices.SortFunc(bs, func(a, b indexedCount) int { return int(a.index - b.index) })
	var spans []histogram.Span
	var counts []float64
	next := int32(0)
	for i, b := range bs {
		if i == 0 || b.index != next {
			offset := b.index - next
			if i == 0 {
				offset = b.index
			}
			spans = append(spans, histogram.Span{Offset: offset})
		}
		spans[len(spans)-1].Length++
		counts = append(counts, b.count)
		next = b.index + 1
	}
	return spans, counts
}
