package ingester

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// MetadataLimits gives a workspace's metadata and exemplar limits, global
// over the cluster; *limits.Overrides has them. Each ingester enforces its
// share of the per-workspace ones, as for series. Implementations must be
// safe for concurrent use.
type MetadataLimits interface {
	// MaxGlobalMetadataPerUser is the most metric names with metadata; 0:
	// no limit.
	MaxGlobalMetadataPerUser(workspace string) int
	// MaxGlobalMetadataPerMetric is the most metadata entries of one metric
	// name; 0: no limit. Every entry of a name goes to the same
	// ingesters: it is not divided.
	MaxGlobalMetadataPerMetric(workspace string) int
	// MaxGlobalExemplarsPerUser is the most exemplars the workspace keeps;
	// 0: none.
	MaxGlobalExemplarsPerUser(workspace string) int
}

// SetMetadataLimits makes the ingester bound the workspaces' metadata and
// exemplars by src; call it before the ingester starts. Without it metadata
// is unbounded and exemplars are dropped.
func (i *Ingester) SetMetadataLimits(src MetadataLimits) { i.metadataLimits = src }

// AMP's discard reasons for metadata over a workspace's limits.
const (
	reasonPerUserMetadata   = "per_user_metadata_limit"
	reasonPerMetricMetadata = "per_metric_metadata_limit"
)

// metadataEntry is one metadata entry of a metric name.
type metadataEntry struct {
	typ        model.MetricType
	help, unit string
}

func compareEntries(a, b metadataEntry) int {
	return cmp.Or(strings.Compare(string(a.typ), string(b.typ)), strings.Compare(a.help, b.help), strings.Compare(a.unit, b.unit))
}

// workspaceMetadata is the metadata of one workspace: for each metric name,
// each distinct entry with when it was last pushed (unix ms).
type workspaceMetadata struct {
	mu      sync.Mutex
	metrics map[string]map[metadataEntry]int64
	gone    bool // dropped from the store: a push that holds it looks again
}

// metadataStore holds the metric metadata pushed to this ingester, per
// workspace, apart from the TSDBs: senders push metadata in requests of
// its own, which must not open a TSDB, and it lives only as long as it is
// pushed again (-ingester.metadata-retain-period).
type metadataStore struct {
	mu         sync.RWMutex
	workspaces map[string]*workspaceMetadata
}

func newMetadataStore() *metadataStore {
	return &metadataStore{workspaces: map[string]*workspaceMetadata{}}
}

func (s *metadataStore) workspace(id string, create bool) *workspaceMetadata {
	s.mu.RLock()
	w := s.workspaces[id]
	s.mu.RUnlock()
	if w != nil || !create {
		return w
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w = s.workspaces[id]; w == nil {
		w = &workspaceMetadata{metrics: map[string]map[metadataEntry]int64{}}
		s.workspaces[strings.Clone(id)] = w
	}
	return w
}

// add stores mds as pushed at now (unix ms): at most maxMetrics metric
// names and maxPerMetric entries per name (0: no limit). The strings of mds
// are copied where kept. It returns how many entries it dropped, by reason.
func (s *metadataStore) add(id string, mds []prompb.MetricMetadata, now int64, maxMetrics, maxPerMetric int) (perUser, perMetric int) {
	w := s.workspace(id, true)
	w.mu.Lock()
	for w.gone {
		w.mu.Unlock()
		w = s.workspace(id, true)
		w.mu.Lock()
	}
	defer w.mu.Unlock()
	for i := range mds {
		md := &mds[i]
		set := w.metrics[md.MetricFamilyName]
		if set == nil {
			if maxMetrics > 0 && len(w.metrics) >= maxMetrics {
				perUser++
				continue
			}
			set = map[metadataEntry]int64{}
			w.metrics[strings.Clone(md.MetricFamilyName)] = set
		}
		e := metadataEntry{typ: metricType(md.Type), help: md.Help, unit: md.Unit}
		if _, ok := set[e]; ok {
			set[e] = now // an existing key keeps its own strings
			continue
		}
		if maxPerMetric > 0 && len(set) >= maxPerMetric {
			perMetric++
			continue
		}
		set[metadataEntry{typ: e.typ, help: strings.Clone(e.help), unit: strings.Clone(e.unit)}] = now
	}
	return perUser, perMetric
}

// metricType is the Prometheus name of a remote-write metric type
// ("gaugehistogram" for GAUGEHISTOGRAM).
func metricType(t prompb.MetricMetadata_MetricType) model.MetricType {
	return model.MetricType(strings.ToLower(t.String()))
}

// purge drops the entries last pushed before cutoff (unix ms), and the
// workspaces left without any. It returns the workspaces it dropped.
func (s *metadataStore) purge(cutoff int64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []string
	for id, w := range s.workspaces {
		w.mu.Lock()
		for name, set := range w.metrics {
			for e, seen := range set {
				if seen < cutoff {
					delete(set, e)
				}
			}
			if len(set) == 0 {
				delete(w.metrics, name)
			}
		}
		empty := len(w.metrics) == 0
		w.gone = empty
		w.mu.Unlock()
		if empty {
			delete(s.workspaces, id)
			gone = append(gone, id)
		}
	}
	return gone
}

// forget drops a workspace's metadata.
func (s *metadataStore) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.workspaces[id]; w != nil {
		w.mu.Lock()
		w.gone = true
		w.mu.Unlock()
		delete(s.workspaces, id)
	}
}

// list returns the workspace's metadata, sorted by metric name, then type,
// help and unit: the first limit names (negative: all), only metric when it
// is not empty, at most limitPerMetric entries per name (0 or negative:
// all). Taking the first ones in a fixed order lets a querier merge the
// answers of several ingesters and cut them again the same way.
func (s *metadataStore) list(id string, limit, limitPerMetric int, metric string) []prompb.MetricMetadata {
	w := s.workspace(id, false)
	if w == nil || limit == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var names []string
	if metric != "" {
		if _, ok := w.metrics[metric]; ok {
			names = []string{metric}
		}
	} else {
		names = make([]string, 0, len(w.metrics))
		for name := range w.metrics {
			names = append(names, name)
		}
		slices.Sort(names)
	}
	if limit > 0 && len(names) > limit {
		names = names[:limit]
	}
	var out []prompb.MetricMetadata
	entries := make([]metadataEntry, 0, 16)
	for _, name := range names {
		entries = entries[:0]
		for e := range w.metrics[name] {
			entries = append(entries, e)
		}
		slices.SortFunc(entries, compareEntries)
		if limitPerMetric > 0 && len(entries) > limitPerMetric {
			entries = entries[:limitPerMetric]
		}
		for _, e := range entries {
			out = append(out, prompb.MetricMetadata{
				Type: prompb.FromMetadataType(e.typ), MetricFamilyName: name, Help: e.help, Unit: e.unit,
			})
		}
	}
	return out
}

// storeMetadata keeps the metadata of a push, within the workspace's limits
// (its share of the per-workspace one). Metadata over them is dropped and
// counted; the push goes on.
func (i *Ingester) storeMetadata(id string, mds []prompb.MetricMetadata) {
	var maxMetrics, maxPerMetric int
	if i.metadataLimits != nil {
		maxMetrics = int(i.share.Load().local(i.metadataLimits.MaxGlobalMetadataPerUser(id)))
		maxPerMetric = i.metadataLimits.MaxGlobalMetadataPerMetric(id)
	}
	perUser, perMetric := i.metadata.add(id, mds, i.now().UnixMilli(), maxMetrics, maxPerMetric)
	if perUser > 0 {
		i.metrics.discardedMetadata.WithLabelValues(id, reasonPerUserMetadata).Add(float64(perUser))
	}
	if perMetric > 0 {
		i.metrics.discardedMetadata.WithLabelValues(id, reasonPerMetricMetadata).Add(float64(perMetric))
	}
}

// purgeMetadata drops the metadata not pushed within the retain period.
func (i *Ingester) purgeMetadata() {
	for _, id := range i.metadata.purge(i.now().Add(-i.cfg.MetadataRetain).UnixMilli()) {
		i.metrics.discardedMetadata.DeleteLabelValues(id, reasonPerUserMetadata)
		i.metrics.discardedMetadata.DeleteLabelValues(id, reasonPerMetricMetadata)
	}
}

// MetricsMetadata returns the metric metadata of the workspace in ctx held
// by this ingester (see metadataStore.list for the order and the limits).
func (i *Ingester) MetricsMetadata(ctx context.Context, req *ingesterpb.MetricsMetadataRequest) (*ingesterpb.MetricsMetadataResponse, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	if err := tenant.ValidID(id); err != nil {
		return nil, apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	return &ingesterpb.MetricsMetadataResponse{
		Metadata: i.metadata.list(id, int(req.Limit), int(req.LimitPerMetric), req.Metric),
	}, nil
}
