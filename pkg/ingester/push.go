package ingester

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// AMP's discard reasons for samples the TSDB rejects.
const (
	reasonOutOfOrder   = "sample-out-of-order"
	reasonDuplicate    = "new-value-for-timestamp"
	reasonOutOfBounds  = "greater_than_max_sample_age"
	reasonBadHistogram = "invalid_native_histogram"
	reasonLabelSet     = "per_labelset_series_limit"
)

// rejection remembers the first sample of a push the TSDB refused, so the
// client gets one readable reason while the rest of the batch is stored.
type rejection struct {
	err    error
	reason string
	series labels.Labels
	ts     int64
	count  int
}

// add counts a refused sample. The first one is reported, unless a later
// one is refused by a series limit: the sender can do something about that
// one, and would not see it behind, say, an out-of-order sample.
func (r *rejection) add(err error, reason string, lset labels.Labels, ts int64) {
	if r.count == 0 || (isSeriesLimit(reason) && !isSeriesLimit(r.reason)) {
		r.err, r.reason, r.series, r.ts = err, reason, lset, ts
	}
	r.count++
}

func isSeriesLimit(reason string) bool {
	return reason == reasonPerUserSeries || reason == reasonPerMetricSeries || reason == reasonLabelSet
}

func (r *rejection) toError() error {
	if r.count == 0 {
		return nil
	}
	// The series limits answer in AMP's words, as they are.
	var (
		perUser   *perUserLimitError
		perMetric *perMetricLimitError
	)
	switch {
	case errors.As(r.err, &perUser):
		return apierror.New(apierror.BadData, apierror.IDPerUserSeriesLimit, "%s", perUser.Error())
	case errors.As(r.err, &perMetric):
		return apierror.New(apierror.BadData, apierror.IDPerMetricSeriesLimit, "%s series: '%s'", perMetric.Error(), r.series.String())
	}
	id, what := apierror.IDSampleOutOfBounds, "the sample is older than the oldest time this workspace still accepts"
	switch {
	case errors.Is(r.err, storage.ErrOutOfOrderSample):
		id, what = apierror.IDSampleOutOfOrder, "the sample is older than the latest sample of its series (out of order)"
	case errors.Is(r.err, storage.ErrTooOldSample):
		id, what = apierror.IDSampleOutOfOrder, "the sample is older than the workspace's newest sample by more than its out-of-order window (outOfOrderTimeWindowInSeconds)"
	case errors.Is(r.err, storage.ErrDuplicateSampleForTimestamp):
		id, what = apierror.IDSampleDuplicate, "the series already has a different value at this timestamp (duplicate sample for timestamp)"
	case errors.As(r.err, new(*errLabelSetLimit)):
		id, what = apierror.IDLabelSetSeriesLimit, fmt.Sprintf("%v (limitsPerLabelSet of the workspace configuration)", r.err)
	case errors.Is(r.err, errInvalidHistogram):
		id, what = apierror.IDInvalidHistogram, fmt.Sprintf("the native histogram is invalid (%v)", errors.Unwrap(r.err))
	}
	return apierror.New(apierror.BadData, id, "%d sample(s) rejected: %s; first rejected sample: timestamp %s, series %s",
		r.count, what, time.UnixMilli(r.ts).UTC().Format(time.RFC3339Nano), r.series.String())
}

// errInvalidHistogram marks a native histogram the TSDB refused as malformed.
var errInvalidHistogram = errors.New("invalid native histogram")

func discardReason(err error) (string, bool) {
	var (
		perUser   *perUserLimitError
		perMetric *perMetricLimitError
		labelSet  *errLabelSetLimit
	)
	switch {
	case errors.As(err, &perUser):
		return reasonPerUserSeries, true
	case errors.As(err, &perMetric):
		return reasonPerMetricSeries, true
	case errors.As(err, &labelSet):
		return reasonLabelSet, true
	case errors.Is(err, errInvalidHistogram):
		return reasonBadHistogram, true
	case errors.Is(err, storage.ErrOutOfOrderSample), errors.Is(err, storage.ErrTooOldSample):
		// ErrTooOldSample: out of order beyond the workspace's window.
		return reasonOutOfOrder, true
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return reasonDuplicate, true
	case errors.Is(err, storage.ErrOutOfBounds):
		return reasonOutOfBounds, true
	}
	return "", false
}

// Push appends the samples and exemplars of req to the TSDB of the
// workspace in ctx, and keeps its metric metadata (see storeMetadata). The
// labels of every series must be sorted by name, with no empty values, as the
// distributor leaves them (the gRPC server checks it for remote callers). Samples
// the TSDB refuses (out of order, duplicate timestamp, too old) are skipped
// and reported in a BadData error after the rest of the batch is committed.
func (i *Ingester) Push(ctx context.Context, req *prompb.WriteRequest) error {
	id, err := tenant.ID(ctx)
	if err != nil {
		return apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	inflight := i.inflightPushes.Add(1)
	defer i.inflightPushes.Add(-1)
	if max := i.cfg.InstanceLimits.MaxInflightPushRequests; max > 0 && inflight > int64(max) {
		return maxInflightError(max)
	}
	if len(req.Metadata) > 0 {
		if err := tenant.ValidID(id); err != nil {
			return apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
		}
		i.storeMetadata(id, req.Metadata)
	}
	if len(req.Timeseries) == 0 {
		return nil // metadata only, as senders push it: no TSDB to open
	}
	u, err := i.acquire(ctx, id, true)
	if err != nil {
		return err
	}
	defer u.release()
	if !u.exemplarsUsed.Load() && hasExemplars(req) {
		i.useExemplars(ctx, id, u)
	}
	u.appendMu.RLock()
	defer u.appendMu.RUnlock()

	app := u.db.Appender(ctx)
	b := i.builders.Get().(*labels.ScratchBuilder)
	defer i.builders.Put(b)
	var (
		rej               rejection
		floats, histos    int
		exemplars, badEx  int
		discardedByReason map[string]int
		overSeriesLimit   int   // samples of new series refused by an instance limit
		instanceLimit     error // the first instance limit that refused one
	)
	// refuse counts n samples of a new series an instance limit refused.
	refuse := func(err error, n int) bool {
		if !errors.Is(err, errMaxSeries) && !errors.Is(err, errMemoryGuard) {
			return false
		}
		if instanceLimit == nil {
			instanceLimit = err
		}
		overSeriesLimit += n
		return true
	}
	discard := func(err error, lset labels.Labels, ts int64) bool {
		reason, ok := discardReason(err)
		if !ok {
			return false
		}
		if discardedByReason == nil {
			discardedByReason = map[string]int{}
		}
		discardedByReason[reason]++
		rej.add(err, reason, lset, ts)
		return true
	}
	now := i.now().Unix()
	getRef, _ := app.(storage.GetRef)
	var scratch labels.Labels // reused: holds the labels of one series at a time
	for _, ts := range req.Timeseries {
		// The wire labels alias the request buffer, which is reused after
		// the push: build them into scratch, and store only copies.
		b.Reset()
		for _, l := range ts.Labels {
			b.Add(l.Name, l.Value)
		}
		b.Overwrite(&scratch)
		h := scratch.Hash()
		var (
			lset   labels.Labels
			ref    storage.SeriesRef
			cached *refEntry
		)
		if e, ok := u.refs.get(h, scratch, now); ok {
			cached, lset, ref = e, e.lset, e.ref
		} else if getRef != nil {
			// Not cached: the head may still hold the series (after a
			// restart, or once its entry was purged), then its labels
			// are shared rather than copied again.
			ref, lset = getRef.GetRef(scratch, h)
		}
		if ref == 0 {
			lset = scratch.Copy()
		}
		firstRef := ref
		refused := false // the series is new and over an instance limit
		for _, s := range ts.Samples {
			r, err := app.Append(ref, lset, s.Timestamp, s.Value)
			if err == nil {
				ref = r
				floats++
				continue
			}
			if refuse(err, len(ts.Samples)+len(ts.Histograms)) {
				refused = true
				break
			}
			if !discard(err, lset, s.Timestamp) {
				_ = app.Rollback()
				return fmt.Errorf("append sample of workspace %s: %w", id, err)
			}
		}
		for _, hs := range ts.Histograms {
			if refused {
				break
			}
			var (
				ih *histogram.Histogram
				fh *histogram.FloatHistogram
			)
			if hs.IsFloatHistogram() {
				fh = hs.ToFloatHistogram()
			} else {
				ih = hs.ToIntHistogram()
			}
			r, err := app.AppendHistogram(ref, lset, hs.Timestamp, ih, fh)
			if err == nil {
				ref = r
				histos++
				continue
			}
			if refuse(err, len(ts.Histograms)) {
				break
			}
			if _, known := discardReason(err); !known {
				// Besides ordering errors, the head refuses histograms that
				// fail validation: the sender's fault, not worth a retry.
				err = fmt.Errorf("%w: %w", errInvalidHistogram, err)
			}
			if !discard(err, lset, hs.Timestamp) {
				_ = app.Rollback()
				return fmt.Errorf("append histogram of workspace %s: %w", id, err)
			}
		}
		if len(ts.Exemplars) > 0 && !refused {
			n := appendExemplars(app, ref, lset, ts.Exemplars, b)
			exemplars += n
			badEx += len(ts.Exemplars) - n
		}
		if ref != 0 && (cached == nil || ref != firstRef) {
			u.refs.put(h, ref, lset, now)
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("commit samples of workspace %s: %w", id, err)
	}
	if u.wal != nil {
		// -ingester.tsdb.wal-sync=always: acknowledge only what is on disk.
		if err := u.wal.sync(); err != nil {
			return apierror.New(apierror.Internal, apierror.IDWALSync, "samples of workspace %s were written but could not be synced to disk, retry the request: %v", id, err)
		}
	}
	i.metrics.ingestedSamples.Add(float64(floats))
	i.metrics.ingestedHistogram.Add(float64(histos))
	i.metrics.ingestedExemplars.Add(float64(exemplars))
	if badEx > 0 {
		i.metrics.discardedExemplar.WithLabelValues(id).Add(float64(badEx))
	}
	for reason, n := range discardedByReason {
		i.metrics.discardedSamples.WithLabelValues(id, reason).Add(float64(n))
	}
	if overSeriesLimit > 0 {
		// 503 before any 400: the sender retries the whole push, and the
		// samples stored now are then accepted again as duplicates.
		if errors.Is(instanceLimit, errMemoryGuard) {
			return i.guard.error(overSeriesLimit)
		}
		return maxSeriesError(i.cfg.InstanceLimits.MaxSeries, overSeriesLimit)
	}
	return rej.toError()
}

func hasExemplars(req *prompb.WriteRequest) bool {
	for i := range req.Timeseries {
		if len(req.Timeseries[i].Exemplars) > 0 {
			return true
		}
	}
	return false
}

// appendExemplars appends the exemplars of the series ref (lset) and
// returns how many the TSDB took. An exemplar needs its series in the head:
// with no sample of it stored (ref 0), they are dropped. The TSDB refuses
// the out-of-order or duplicate ones, and all of them while the workspace
// keeps none (-ingester.max-global-exemplars-per-user 0): they are dropped,
// never failing the push, as Prometheus's receiver does. b is scratch.
func appendExemplars(app storage.Appender, ref storage.SeriesRef, lset labels.Labels, exs []prompb.Exemplar, b *labels.ScratchBuilder) int {
	if ref == 0 {
		return 0
	}
	n := 0
	for _, ex := range exs {
		b.Reset()
		for _, l := range ex.Labels {
			b.Add(l.Name, l.Value)
		}
		b.Sort()
		// Labels copies the names and values out of the request's buffer.
		e := exemplar.Exemplar{Labels: b.Labels(), Value: ex.Value, Ts: ex.Timestamp, HasTs: true}
		if _, err := app.AppendExemplar(ref, lset, e); err == nil {
			n++
		}
	}
	return n
}
