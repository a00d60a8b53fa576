// Package limits holds the per-workspace limits and their overrides. Every
// component that enforces a limit declares a narrow interface for the few
// accessors it uses; only this package knows the whole set.
package limits

import (
	"flag"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
)

// Limits are the limits of one workspace, a section per component that
// enforces them; the overrides file names them flat (the sections are
// inline). The defaults mirror AMP's quotas.
type Limits struct {
	Distributor  DistributorLimits  `yaml:",inline"`
	Ingester     IngesterLimits     `yaml:",inline"`
	Querier      QuerierLimits      `yaml:",inline"`
	Compactor    CompactorLimits    `yaml:",inline"`
	Ruler        RulerLimits        `yaml:",inline"`
	Alertmanager AlertmanagerLimits `yaml:",inline"`
}

// CompactorLimits govern what the compactor keeps of a workspace.
type CompactorLimits struct {
	// AMP quota: retention, 150 days per workspace (adjustable).
	RetentionPeriod model.Duration `yaml:"retention_period"`
}

// DistributorLimits are what the distributor checks of each pushed series.
type DistributorLimits struct {
	// AMP quota: labels per series, 70.
	MaxLabelNamesPerSeries int `yaml:"max_label_names_per_series"`
	// AMP quota: label set size, 7 KB.
	MaxLabelsSizeBytes  int `yaml:"max_labels_size_bytes"`
	MaxLabelNameLength  int `yaml:"max_label_name_length"`
	MaxLabelValueLength int `yaml:"max_label_value_length"`
	// Samples stamped later than now plus this are refused: one of them
	// would move the TSDB head forward and get every normal sample of the
	// workspace refused as too old.
	CreationGracePeriod time.Duration `yaml:"creation_grace_period"`
	// AMP: metric samples older than 1 hour are not ingested.
	PastGracePeriod time.Duration `yaml:"past_grace_period"`
	// AMP quota: metadata length (metric name, HELP, UNIT), 1 KB.
	MaxMetadataLength int `yaml:"max_metadata_length"`
	// AMP quota: metadata per metric, 10.
	MaxMetadataPerMetric int `yaml:"max_metadata_per_metric"`

	// AMP quota: ingestion rate per workspace, 170,000 samples/s.
	IngestionRate float64 `yaml:"ingestion_rate"`
	// AMP quota: ingestion burst size per workspace, 1,000,000 samples.
	IngestionBurstSize int `yaml:"ingestion_burst_size"`

	// High-availability pairs (AMP deduplicates them always).
	AcceptHASamples bool   `yaml:"accept_ha_samples"`
	HAClusterLabel  string `yaml:"ha_cluster_label"`
	HAReplicaLabel  string `yaml:"ha_replica_label"`
	// AMP quota: HA tracker clusters per workspace, 500.
	HAMaxClusters int `yaml:"ha_max_clusters"`
}

// QuerierLimits bound what one query may read.
type QuerierLimits struct {
	// AMP quota: query series fetched, 12,000,000.
	MaxFetchedSeriesPerQuery int `yaml:"max_fetched_series_per_query"`
	// AMP quota: query chunks fetched, 20,000,000.
	MaxFetchedChunksPerQuery int `yaml:"max_fetched_chunks_per_query"`
	// AMP quota: query samples, 50,000,000.
	MaxFetchedSamplesPerQuery int `yaml:"max_fetched_samples_per_query"`
	// AMP quota: query bytes, 5 GB for an instant query and per 24 hours of
	// a range query.
	MaxFetchedChunkBytesPerQuery int64 `yaml:"max_fetched_chunk_bytes_per_query"`

	// AMP quota: query time range, 32 days.
	MaxQueryLength model.Duration `yaml:"max_query_length"`
	// AMP quota: request size (ingest or query), 1 MB.
	MaxQueryExpressionSizeBytes int `yaml:"max_query_expression_size_bytes"`
	// Not an AMP quota: Prometheus's parser takes time that grows faster
	// than the expression's size with its nesting.
	MaxQueryExpressionDepth int `yaml:"max_query_expression_depth"`
	// Not an AMP quota: compiling and matching a regular expression takes
	// time that grows faster than its size.
	MaxQueryRegexpSizeBytes int            `yaml:"max_query_regexp_size_bytes"`
	BlockedQueries          []BlockedQuery `yaml:"blocked_queries"`
	// AMP's query samples processed (QSP) thresholds, which a request may
	// lower with its max_samples_processed_warning_threshold and
	// max_samples_processed_error_threshold parameters. 0: none.
	MaxSamplesProcessedWarningThreshold int64 `yaml:"max_samples_processed_warning_threshold"`
	MaxSamplesProcessedErrorThreshold   int64 `yaml:"max_samples_processed_error_threshold"`
	// Not an AMP quota: AMP queues queries per workspace.
	MaxConcurrentQueries int `yaml:"max_concurrent_queries_per_workspace"`
	// Not an AMP quota: the query-frontend's shuffle sharding of a
	// workspace to this many of the connected queriers (0: all).
	MaxQueriersPerWorkspace int `yaml:"max_queriers_per_workspace"`
}

// RegisterFlags registers the default limits.
func (l *Limits) RegisterFlags(f *flag.FlagSet) {
	d, q, c := &l.Distributor, &l.Querier, &l.Compactor
	c.RetentionPeriod = model.Duration(150 * 24 * time.Hour)
	f.Var(&c.RetentionPeriod, "compactor.retention-period", "How long a workspace's samples are kept in object storage: blocks wholly older than this are deleted. AMP quota: 150 days retention per workspace. 0: keep forever.")
	f.IntVar(&d.MaxLabelNamesPerSeries, "validation.max-label-names-per-series", 70, "Maximum number of labels per series, including the metric name. AMP quota: 70 labels per series.")
	f.IntVar(&d.MaxLabelsSizeBytes, "validation.max-labels-size-bytes", 7*1024, "Maximum combined size in bytes of the label names and values of one series. AMP quota: 7 KB label set size. 0 disables the check.")
	f.IntVar(&d.MaxLabelNameLength, "validation.max-label-name-length", 1024, "Maximum length in bytes of a label name.")
	f.IntVar(&d.MaxLabelValueLength, "validation.max-label-value-length", 2048, "Maximum length in bytes of a label value.")
	f.DurationVar(&d.CreationGracePeriod, "validation.creation-grace-period", 10*time.Minute, "Samples, histograms and exemplars stamped later than now plus this are refused (reason too_far_in_future); the rest of the request is stored.")
	d.registerIngestionFlags(f)
	l.Ingester.registerFlags(f)
	l.Ruler.registerFlags(f)
	l.Alertmanager.registerFlags(f)
	f.IntVar(&q.MaxFetchedSeriesPerQuery, "querier.max-fetched-series-per-query", 12_000_000, "Most distinct series one query may read. AMP quota: 12,000,000 series fetched per query. 0: no limit.")
	f.IntVar(&q.MaxFetchedChunksPerQuery, "querier.max-fetched-chunks-per-query", 20_000_000, "Most chunks one query may read, counting every replica read. AMP quota: 20,000,000 chunks fetched per query. 0: no limit.")
	f.IntVar(&q.MaxFetchedSamplesPerQuery, "querier.max-fetched-samples-per-query", 50_000_000, "Most samples the chunks read by one query may hold, counting every replica read. AMP quota: 50,000,000 query samples. 0: no limit.")
	f.Int64Var(&q.MaxFetchedChunkBytesPerQuery, "querier.max-fetched-chunk-bytes-per-query", 5_000_000_000, "Most chunk bytes one query may read, for an instant query and per 24 hours of a range query's span, counting every replica read. AMP quota: 5 GB query bytes. 0: no limit.")
	q.registerShapeFlags(f)
}

// Validate checks the limits for values that cannot work.
func (l *Limits) Validate() error {
	d, q := &l.Distributor, &l.Querier
	if d.MaxLabelNamesPerSeries <= 0 {
		return fmt.Errorf("validation.max-label-names-per-series must be positive, got %d", d.MaxLabelNamesPerSeries)
	}
	if d.MaxLabelNameLength <= 0 || d.MaxLabelValueLength <= 0 {
		return fmt.Errorf("label name and value length limits must be positive")
	}
	if d.CreationGracePeriod < 0 {
		return fmt.Errorf("validation.creation-grace-period must not be negative")
	}
	if err := d.validateIngestion(); err != nil {
		return err
	}
	if err := l.Ingester.validate(); err != nil {
		return err
	}
	if l.Compactor.RetentionPeriod < 0 {
		return fmt.Errorf("compactor.retention-period must not be negative")
	}
	if q.MaxFetchedSeriesPerQuery < 0 || q.MaxFetchedChunksPerQuery < 0 || q.MaxFetchedSamplesPerQuery < 0 || q.MaxFetchedChunkBytesPerQuery < 0 {
		return fmt.Errorf("per-query limits must not be negative")
	}
	if err := q.validateShape(); err != nil {
		return err
	}
	return nil
}

// Overrides answers per-workspace limits: a workspace's own entry when it has
// one, otherwise the defaults.
type Overrides struct {
	defaults     Limits
	perWorkspace atomic.Pointer[map[string]*Limits]
}

// NewOverrides returns Overrides over the defaults and the per-workspace
// entries (which may be nil).
func NewOverrides(defaults Limits, perWorkspace map[string]*Limits) (*Overrides, error) {
	if err := defaults.Validate(); err != nil {
		return nil, err
	}
	for id, l := range perWorkspace {
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("overrides of workspace %s: %w", id, err)
		}
	}
	o := &Overrides{defaults: defaults}
	o.set(perWorkspace)
	return o, nil
}

func (o *Overrides) get(workspace string) *Limits {
	if l, ok := o.current()[workspace]; ok && l != nil {
		return l
	}
	return &o.defaults
}

// MaxLabelNamesPerSeries is the most labels one series may have.
func (o *Overrides) MaxLabelNamesPerSeries(workspace string) int {
	return o.get(workspace).Distributor.MaxLabelNamesPerSeries
}

// MaxLabelsSizeBytes is the most bytes of label names and values one series may have; 0 means no limit.
func (o *Overrides) MaxLabelsSizeBytes(workspace string) int {
	return o.get(workspace).Distributor.MaxLabelsSizeBytes
}

// MaxLabelNameLength is the longest label name accepted.
func (o *Overrides) MaxLabelNameLength(workspace string) int {
	return o.get(workspace).Distributor.MaxLabelNameLength
}

// MaxLabelValueLength is the longest label value accepted.
func (o *Overrides) MaxLabelValueLength(workspace string) int {
	return o.get(workspace).Distributor.MaxLabelValueLength
}

// CreationGracePeriod is how far ahead of now a sample may be stamped.
func (o *Overrides) CreationGracePeriod(workspace string) time.Duration {
	return o.get(workspace).Distributor.CreationGracePeriod
}

// MaxFetchedSeriesPerQuery is the most distinct series one query may read; 0 means no limit.
func (o *Overrides) MaxFetchedSeriesPerQuery(workspace string) int {
	return o.get(workspace).Querier.MaxFetchedSeriesPerQuery
}

// MaxFetchedChunksPerQuery is the most chunks one query may read; 0 means no limit.
func (o *Overrides) MaxFetchedChunksPerQuery(workspace string) int {
	return o.get(workspace).Querier.MaxFetchedChunksPerQuery
}

// MaxFetchedSamplesPerQuery is the most samples one query's chunks may hold; 0 means no limit.
func (o *Overrides) MaxFetchedSamplesPerQuery(workspace string) int {
	return o.get(workspace).Querier.MaxFetchedSamplesPerQuery
}

// MaxFetchedChunkBytesPerQuery is the most chunk bytes one query may read per
// 24 hours of its span; 0 means no limit.
func (o *Overrides) MaxFetchedChunkBytesPerQuery(workspace string) int64 {
	return o.get(workspace).Querier.MaxFetchedChunkBytesPerQuery
}

// RetentionPeriod is how long the workspace's samples are kept in object
// storage; 0 keeps them forever.
func (o *Overrides) RetentionPeriod(workspace string) time.Duration {
	return time.Duration(o.get(workspace).Compactor.RetentionPeriod)
}
