package distributor

import (
	"context"
	"slices"
	"unicode/utf8"

	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// discards counts what the stages dropped of a request, by reason, in the
// order the reasons first came (a request rarely has more than one).
type discards struct {
	samples, exemplars, metadata []discardCount
	series                       int // series dropped whole
}

type discardCount struct {
	reason string
	n      int
}

func addDiscard(to *[]discardCount, reason string, n int) {
	for i := range *to {
		if (*to)[i].reason == reason {
			(*to)[i].n += n
			return
		}
	}
	*to = append(*to, discardCount{reason, n})
}

func total(cs []discardCount) int {
	n := 0
	for _, c := range cs {
		n += c.n
	}
	return n
}

// refuse remembers the first refusal of part of the request.
func (s *pushState) refuse(err func() error) {
	if s.firstInvalid == nil {
		s.firstInvalid = err()
	}
}

// refusal is the error the sender gets once the rest of the request is
// stored: the first refusal, with what was dropped in all.
func (s *pushState) refusal() error {
	if s.firstInvalid == nil {
		return nil
	}
	e := apierror.From(s.firstInvalid)
	return apierror.New(e.Cause, e.ID, "%s (this request: %d series, %d samples and %d metadata discarded, the rest stored)",
		e.Msg, s.discarded.series, total(s.discarded.samples), total(s.discarded.metadata))
}

// dedupeHA is the first stage: of a high-availability pair, only the
// elected replica's samples go on, without the replica label. done tells
// that the request ends here: acknowledged, its samples dropped.
func (d *Distributor) dedupeHA(ctx context.Context, s *pushState) (done bool, err error) {
	if d.replicas == nil || len(s.req.Timeseries) == 0 || !d.limits.AcceptHASamples(s.workspace) {
		return false, nil
	}
	clusterLabel, replicaLabel := d.limits.HAClusterLabel(s.workspace), d.limits.HAReplicaLabel(s.workspace)
	// A Prometheus pair sets both as external labels, on every series: the
	// first series tells.
	cluster, replica := haLabels(s.req.Timeseries[0].Labels, clusterLabel, replicaLabel)
	if cluster == "" || replica == "" {
		return false, nil
	}
	if lim := d.limits.MaxLabelValueLength(s.workspace); len(cluster) > lim || len(replica) > lim || !utf8.ValidString(cluster) || !utf8.ValidString(replica) {
		// Not a name the election may keep (it is gossiped to every
		// member): no deduplication, and validation refuses the series.
		return false, nil
	}
	if err := d.replicas.CheckReplica(ctx, s.workspace, cluster, replica, s.now); err != nil {
		if IsNotElected(err) {
			d.replicas.CountDeduplicated(s.workspace, cluster, s.req.Samples())
			return true, nil
		}
		return true, err
	}
	// The replica label goes, from every series that has it: dropped by
	// the validation stage, in its pass over each series' labels.
	s.drop = replicaLabel
	if d.single() {
		s.req.Raw = nil // one ingester, called in process: the bytes are not sent
	}
	if s.req.Raw != nil {
		size := 0
		for _, raw := range s.req.Raw {
			size += len(raw)
		}
		// The rewritten series are held as long as the request: their
		// memory comes out of the request's budget.
		if err := s.req.Reserve(size); err != nil {
			return true, err
		}
		s.cutBuf = s.scratch(d, size)
	}
	return false, nil
}

// dropLabel removes the label s.drop from series i. Its bytes are cut
// rather than encoded again: copied without the label into a buffer held
// until the request is released.
func (s *pushState) dropLabel(i int, ts *prompb.TimeSeries) {
	j := -1
	if at := s.dropAt; at < len(ts.Labels) && ts.Labels[at].Name == s.drop {
		j = at
	} else {
		for k := range ts.Labels {
			if ts.Labels[k].Name == s.drop {
				j, s.dropAt = k, k // the external labels of one sender sit alike
				break
			}
		}
	}
	if j < 0 {
		return
	}
	ts.Labels = append(ts.Labels[:j], ts.Labels[j+1:]...)
	if j < len(ts.Labels) && ts.Labels[j].Name == s.drop {
		// The label twice, sorted: every copy goes (validation sees an
		// unsorted series' leftover copy).
		ts.Labels = slices.DeleteFunc(ts.Labels, func(l prompb.Label) bool { return l.Name == s.drop })
		if s.req.Raw != nil {
			s.req.Raw[i] = nil
		}
		return
	}
	if s.req.Raw == nil || s.req.Raw[i] == nil {
		return
	}
	start := len(s.cutBuf)
	var ok bool
	if s.cutBuf, ok = remotewrite.AppendWithoutLabel(s.cutBuf, s.req.Raw[i], j, s.drop); ok {
		s.req.Raw[i] = s.cutBuf[start:len(s.cutBuf):len(s.cutBuf)]
	} else {
		s.req.Raw[i] = nil // encoded again
	}
}

// limitRate is the second stage: the request fits the workspace's
// ingestion rate whole, or is refused whole with 429 (senders retry).
// Samples, exemplars and metadata each take a token, and every request at
// least one.
func (d *Distributor) limitRate(s *pushState) error {
	samples, exemplars, metadata := 0, 0, len(s.req.Metadata)
	for i := range s.req.Timeseries {
		ts := &s.req.Timeseries[i]
		samples += len(ts.Samples) + len(ts.Histograms)
		exemplars += len(ts.Exemplars)
	}
	ok, limit := d.rates.allow(s.workspace, s.now, max(samples+exemplars+metadata, 1))
	if ok {
		return nil
	}
	d.metrics.discardedSamples.WithLabelValues(s.workspace, reasonRateLimited).Add(float64(samples))
	if exemplars > 0 {
		d.metrics.discardedExemplars.WithLabelValues(s.workspace, reasonRateLimited).Add(float64(exemplars))
	}
	if metadata > 0 {
		d.metrics.discardedMetadata.WithLabelValues(s.workspace, reasonRateLimited).Add(float64(metadata))
	}
	return apierror.New(apierror.TooManyRequests, apierror.IDRateLimited,
		"ingestion rate limit (%v) exceeded while adding %d samples and %d metadata", limit, samples+exemplars, metadata)
}

// validate is the third stage: it drops the series whose labels are
// invalid, the samples stamped too far ahead or too far back, and the
// metadata over AMP's limits, remembering the first refusal.
func (d *Distributor) validate(s *pushState) {
	lim := resolveLimits(d.limits, s.workspace, s.now)
	req := s.req
	n := 0
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		if s.drop != "" {
			s.dropLabel(i, ts)
		}
		v, changed := validateSeries(lim, ts)
		if changed && v.reason == "" && s.drop != "" && slices.ContainsFunc(ts.Labels, func(l prompb.Label) bool { return l.Name == s.drop }) {
			// An unsorted series that carried the replica label twice.
			v = violation{reason: reasonDuplicateLabel, label: s.drop}
		}
		if v.reason != "" {
			addDiscard(&s.discarded.samples, v.reason, len(ts.Samples)+len(ts.Histograms))
			if len(ts.Exemplars) > 0 {
				addDiscard(&s.discarded.exemplars, v.reason, len(ts.Exemplars))
			}
			s.discarded.series++
			s.refuse(func() error { return v.err(lim, ts.Labels) })
			continue
		}
		exemplars := len(ts.Exemplars)
		future, old, firstFuture, firstOld, exFuture, exOld := dropOutOfRange(lim, ts)
		if exFuture > 0 {
			addDiscard(&s.discarded.exemplars, reasonTooFarInFuture, exFuture)
		}
		if exOld > 0 {
			addDiscard(&s.discarded.exemplars, reasonTooOld, exOld)
		}
		if future+old > 0 {
			if future > 0 {
				addDiscard(&s.discarded.samples, reasonTooFarInFuture, future)
				s.refuse(func() error { return futureErr(lim, ts.Labels, firstFuture) })
			}
			if old > 0 {
				addDiscard(&s.discarded.samples, reasonTooOld, old)
				s.refuse(func() error { return tooOldErr(lim, ts.Labels, firstOld) })
			}
			if len(ts.Samples)+len(ts.Histograms)+len(ts.Exemplars) == 0 {
				s.discarded.series++
				continue
			}
			changed = true
		}
		if len(ts.Exemplars) != exemplars {
			changed = true // exemplars out of range are dropped, counted, without a word
		}
		s.kept.samples += len(ts.Samples) + len(ts.Histograms)
		s.kept.exemplars += len(ts.Exemplars)
		// Swap rather than copy: every element keeps slices of its own, which
		// the pooled decoder reuses for the next request.
		req.Timeseries[n], req.Timeseries[i] = req.Timeseries[i], req.Timeseries[n]
		if req.Raw != nil {
			req.Raw[n] = req.Raw[i]
			if changed {
				req.Raw[n] = nil // its bytes say something else now
			}
		}
		n++
	}
	req.Timeseries = req.Timeseries[:n]
	if req.Raw != nil {
		req.Raw = req.Raw[:n]
	}
	if s.cut != nil {
		*s.cut = s.cutBuf // kept for the pool
	}
	if len(req.Metadata) > 0 {
		d.validateMetadata(s, lim)
	}
}

// validateMetadata drops the metadata entries without a metric name, with
// a field over AMP's metadata length, or beyond AMP's entries per metric.
func (d *Distributor) validateMetadata(s *pushState, lim seriesLimits) {
	md := s.req.Metadata
	var perMetric map[string]int
	if lim.maxMetadataPerMetric > 0 {
		perMetric = make(map[string]int, len(md))
	}
	n := 0
	for i := range md {
		m := &md[i]
		reason, err := "", error(nil)
		switch {
		case m.MetricFamilyName == "":
			reason = reasonMissingMetricName
			err = apierror.New(apierror.BadData, apierror.IDMissingMetricName, "received metadata without a metric name, type: %s, help: '%s'", m.Type, truncate(m.Help))
		case lim.maxMetadataLength > 0 && max(len(m.MetricFamilyName), len(m.Help), len(m.Unit)) > lim.maxMetadataLength:
			reason = reasonMetadataTooLong
			err = apierror.New(apierror.BadData, apierror.IDMetadataTooLong, "received metadata whose metric name, help or unit is longer than the limit (actual: %d, limit: %d, -validation.max-metadata-length) metric: '%s'",
				max(len(m.MetricFamilyName), len(m.Help), len(m.Unit)), lim.maxMetadataLength, truncate(m.MetricFamilyName))
		case perMetric != nil && perMetric[m.MetricFamilyName] >= lim.maxMetadataPerMetric:
			reason = reasonTooManyMetadata
			err = apierror.New(apierror.BadData, apierror.IDTooManyMetadata, "received more metadata for one metric than the limit (limit: %d, -validation.max-metadata-per-metric) metric: '%s'",
				lim.maxMetadataPerMetric, truncate(m.MetricFamilyName))
		}
		if reason != "" {
			addDiscard(&s.discarded.metadata, reason, 1)
			s.refuse(func() error { return err })
			continue
		}
		if perMetric != nil {
			perMetric[m.MetricFamilyName]++
		}
		md[n] = md[i]
		n++
	}
	s.req.Metadata = md[:n]
}
