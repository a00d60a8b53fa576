package frontend

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// answer is a successful query_range answer, its points kept as the
// querier wrote them so that the merged answer has the same bytes.
type answer struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string       `json:"resultType"`
		Result     []seriesJSON `json:"result"`
		Stats      *statsJSON   `json:"stats,omitempty"`
	} `json:"data"`
	Warnings []string `json:"warnings,omitempty"`
	Infos    []string `json:"infos,omitempty"`
}

type seriesJSON struct {
	Metric     json.RawMessage   `json:"metric"`
	Values     []json.RawMessage `json:"values,omitempty"`
	Histograms []json.RawMessage `json:"histograms,omitempty"`
}

// statsJSON is Prometheus's stats=all section, its fields in Prometheus's
// order.
type statsJSON struct {
	Timings struct {
		EvalTotalTime        float64 `json:"evalTotalTime"`
		ResultSortTime       float64 `json:"resultSortTime"`
		QueryPreparationTime float64 `json:"queryPreparationTime"`
		InnerEvalTime        float64 `json:"innerEvalTime"`
		ExecQueueTime        float64 `json:"execQueueTime"`
		ExecTotalTime        float64 `json:"execTotalTime"`
	} `json:"timings"`
	Samples *struct {
		TotalQueryableSamplesPerStep []json.RawMessage `json:"totalQueryableSamplesPerStep,omitempty"`
		TotalQueryableSamples        int64             `json:"totalQueryableSamples"`
		SamplesReadPerStep           []json.RawMessage `json:"samplesReadPerStep,omitempty"`
		SamplesRead                  int64             `json:"samplesRead"`
		SeriesTouched                int64             `json:"seriesTouched"`
		PeakSamples                  int               `json:"peakSamples"`
	} `json:"samples,omitempty"`
}

func parseAnswer(body []byte) (*answer, error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, apierror.New(apierror.Internal, "", "decode a querier's answer: %v", err)
	}
	if a.Status != "success" || a.Data.ResultType != "matrix" {
		return nil, apierror.New(apierror.Internal, "", "unexpected answer of a range query leg: status %q, result type %q", a.Status, a.Data.ResultType)
	}
	return &a, nil
}

// mergeAnswers merges the answers of consecutive legs into the answer of
// the whole query: each series' points in time order, series sorted by
// labels as Prometheus sorts a matrix, warnings and infos without
// repeats, stats added up.
func mergeAnswers(legs []*answer) ([]byte, error) {
	type merged struct {
		lbls labels.Labels
		s    seriesJSON
	}
	bySeries := map[string]*merged{}
	var order []*merged
	var warnings, infos []string
	var stats *statsJSON
	for _, a := range legs {
		for _, s := range a.Data.Result {
			m := bySeries[string(s.Metric)]
			if m == nil {
				var lm map[string]string
				if err := json.Unmarshal(s.Metric, &lm); err != nil {
					return nil, apierror.New(apierror.Internal, "", "decode series labels: %v", err)
				}
				m = &merged{lbls: labels.FromMap(lm), s: seriesJSON{Metric: s.Metric}}
				bySeries[string(s.Metric)] = m
				order = append(order, m)
			}
			m.s.Values = append(m.s.Values, s.Values...)
			m.s.Histograms = append(m.s.Histograms, s.Histograms...)
		}
		warnings = appendNew(warnings, a.Warnings)
		infos = appendNew(infos, a.Infos)
		stats = addStats(stats, a.Data.Stats)
	}
	slices.SortFunc(order, func(a, b *merged) int { return labels.Compare(a.lbls, b.lbls) })

	var buf bytes.Buffer
	buf.WriteString(`{"status":"success","data":{"resultType":"matrix","result":[`)
	for i, m := range order {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"metric":`)
		buf.Write(m.s.Metric)
		writeArray(&buf, "values", m.s.Values)
		writeArray(&buf, "histograms", m.s.Histograms)
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	if stats != nil {
		b, err := json.Marshal(stats)
		if err != nil {
			return nil, err
		}
		buf.WriteString(`,"stats":`)
		buf.Write(b)
	}
	buf.WriteByte('}')
	for _, l := range []struct {
		name string
		msgs []string
	}{{"warnings", warnings}, {"infos", infos}} {
		if len(l.msgs) == 0 {
			continue
		}
		b, err := json.Marshal(l.msgs)
		if err != nil {
			return nil, err
		}
		buf.WriteString(`,"` + l.name + `":`)
		buf.Write(b)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func writeArray(buf *bytes.Buffer, name string, items []json.RawMessage) {
	if len(items) == 0 {
		return
	}
	buf.WriteString(`,"` + name + `":[`)
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(it)
	}
	buf.WriteByte(']')
}

func appendNew(to, from []string) []string {
	for _, s := range from {
		if !slices.Contains(to, s) {
			to = append(to, s)
		}
	}
	return to
}

// addStats adds one leg's stats to the query's: times and sample counts
// add up, per-step counts are concatenated (the legs' steps are disjoint),
// the peak is the largest leg's.
func addStats(sum, s *statsJSON) *statsJSON {
	if s == nil {
		return sum
	}
	if sum == nil {
		c := *s
		if s.Samples != nil {
			smp := *s.Samples
			c.Samples = &smp
		}
		return &c
	}
	t, u := &sum.Timings, s.Timings
	t.EvalTotalTime += u.EvalTotalTime
	t.ResultSortTime += u.ResultSortTime
	t.QueryPreparationTime += u.QueryPreparationTime
	t.InnerEvalTime += u.InnerEvalTime
	t.ExecQueueTime += u.ExecQueueTime
	t.ExecTotalTime += u.ExecTotalTime
	if s.Samples != nil {
		if sum.Samples == nil {
			smp := *s.Samples
			sum.Samples = &smp
			return sum
		}
		a, b := sum.Samples, s.Samples
		a.TotalQueryableSamplesPerStep = append(a.TotalQueryableSamplesPerStep, b.TotalQueryableSamplesPerStep...)
		a.TotalQueryableSamples += b.TotalQueryableSamples
		a.SamplesReadPerStep = append(a.SamplesReadPerStep, b.SamplesReadPerStep...)
		a.SamplesRead += b.SamplesRead
		a.SeriesTouched += b.SeriesTouched
		a.PeakSamples = max(a.PeakSamples, b.PeakSamples)
	}
	return sum
}
