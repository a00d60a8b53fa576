package querier

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/ingester/client"
	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
)

// onReadQuorum runs f on each ingester a read must hear from to see every
// acknowledged write (see readSet), and returns their answers.
func onReadQuorum[T any](ctx context.Context, q *Queryable, f func(context.Context, client.Ingester) (T, error)) ([]T, error) {
	rs, err := q.readSet()
	if err != nil {
		return nil, storageErr(err)
	}
	res, err := ring.DoUntilQuorum(ctx, rs, ring.DoUntilQuorumConfig{}, func(ctx context.Context, inst *ring.InstanceDesc) (T, error) {
		var zero T
		c, err := q.ingesters(*inst)
		if err != nil {
			return zero, err
		}
		return f(ctx, c)
	}, func(T) {})
	return res, storageErr(err)
}

// MetricsMetadata returns the metric metadata of the workspace in ctx, as
// Prometheus's /api/v1/metadata does: for each metric name its distinct
// entries, at most limit names (negative: all), at most limitPerMetric
// entries per name (0 or negative: all), only metric's when it is not
// empty. Prometheus picks the names and entries a limit keeps as its maps
// iterate; here they are the first by name, then by type, help and unit,
// which every ingester cuts alike, so the limits are applied on the
// ingesters too. Metadata lives in the ingesters only, for
// -ingester.metadata-retain-period after it was last pushed.
func (q *Queryable) MetricsMetadata(ctx context.Context, limit, limitPerMetric int, metric string) (map[string][]metadata.Metadata, error) {
	req := &ingesterpb.MetricsMetadataRequest{Limit: clampInt32(limit), LimitPerMetric: clampInt32(limitPerMetric), Metric: metric}
	answers, err := onReadQuorum(ctx, q, func(ctx context.Context, c client.Ingester) ([]prompb.MetricMetadata, error) {
		resp, err := c.MetricsMetadata(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Metadata, nil
	})
	if err != nil {
		return nil, err
	}
	return mergeMetadata(answers, limit, limitPerMetric, metric), nil
}

func clampInt32(n int) int32 {
	return int32(max(min(n, math.MaxInt32), math.MinInt32))
}

// mergeMetadata merges the answers of several ingesters (replicas, and the
// shards of other metric names), each entry once, and cuts the result as
// MetricsMetadata says.
func mergeMetadata(answers [][]prompb.MetricMetadata, limit, limitPerMetric int, metric string) map[string][]metadata.Metadata {
	sets := map[string]map[metadata.Metadata]struct{}{}
	for _, a := range answers {
		for _, md := range a {
			if metric != "" && md.MetricFamilyName != metric {
				continue
			}
			set := sets[md.MetricFamilyName]
			if set == nil {
				set = map[metadata.Metadata]struct{}{}
				sets[md.MetricFamilyName] = set
			}
			set[metadata.Metadata{Type: metricType(md.Type), Help: md.Help, Unit: md.Unit}] = struct{}{}
		}
	}
	names := make([]string, 0, len(sets))
	for name := range sets {
		names = append(names, name)
	}
	slices.Sort(names)
	if limit >= 0 && len(names) > limit {
		names = names[:limit]
	}
	out := make(map[string][]metadata.Metadata, len(names))
	for _, name := range names {
		entries := make([]metadata.Metadata, 0, len(sets[name]))
		for e := range sets[name] {
			entries = append(entries, e)
		}
		slices.SortFunc(entries, func(a, b metadata.Metadata) int {
			return cmp.Or(strings.Compare(string(a.Type), string(b.Type)), strings.Compare(a.Help, b.Help), strings.Compare(a.Unit, b.Unit))
		})
		if limitPerMetric > 0 && len(entries) > limitPerMetric {
			entries = entries[:limitPerMetric]
		}
		out[name] = entries
	}
	return out
}

// metadataHandler serves /api/v1/metadata. Prometheus's own handler reads
// the metadata of its scrape targets (v1.API's TargetRetriever), which
// cannot fail: an ingester that does not answer would look like no
// metadata. This one takes the same parameters, with Prometheus's
// validation and wording, and writes the same JSON (metadata.Metadata in
// v1.Response); a failed read is an error.
func metadataHandler(q *Queryable) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		limit, err := intParam(r, "limit", -1)
		if err != nil {
			apierror.WritePrometheus(w, err)
			return
		}
		limitPerMetric, err := intParam(r, "limit_per_metric", -1)
		if err != nil {
			apierror.WritePrometheus(w, err)
			return
		}
		res, err := q.MetricsMetadata(r.Context(), limit, limitPerMetric, r.FormValue("metric"))
		if err != nil {
			apierror.WritePrometheus(w, withoutStorageErr(err))
			return
		}
		writeSuccess(w, res)
	}
}

// withoutStorageErr is the error a storage error wraps (it has no Unwrap),
// for a handler that answers it itself.
func withoutStorageErr(err error) error {
	var es promql.ErrStorage
	if errors.As(err, &es) {
		return es.Err
	}
	return err
}

// metricType is the Prometheus name of a remote-write metric type
// ("gaugehistogram" for GAUGEHISTOGRAM).
func metricType(t prompb.MetricMetadata_MetricType) model.MetricType {
	return model.MetricType(strings.ToLower(t.String()))
}

// intParam reads an integer parameter as Prometheus's metadata API does:
// absent, it is def.
func intParam(r *http.Request, name string, def int) (int, error) {
	s := r.FormValue(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, apierror.New(apierror.BadData, apierror.IDInvalidQuery, "%s must be a number", name)
	}
	return n, nil
}

// writeSuccess writes data in Prometheus's success envelope, as its API
// encodes it.
func writeSuccess(w http.ResponseWriter, data any) {
	b, err := json.Marshal(&v1.Response{Status: "success", Data: data})
	if err != nil {
		apierror.WritePrometheus(w, apierror.New(apierror.Internal, apierror.IDInternal, "encode response: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
