package limits

import (
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
)

// IngesterLimits bound what one workspace may hold in the ingesters. The
// series limits are global: each ingester enforces its share, the limit
// times the replication factor divided by the ingesters that hold series.
type IngesterLimits struct {
	// AMP quota: active series per workspace, 10,000,000 (a series is
	// active while it had a sample in the last 2 hours).
	MaxGlobalSeriesPerUser int `yaml:"max_global_series_per_user"`
	// AMP: the active-series capacity adapts to the workspace's use, twice
	// the average of the last 30 minutes, at least 2,000,000, up to the
	// quota. 0: the capacity is the quota.
	SeriesCapacityMinimum int `yaml:"series_capacity_minimum"`
	// AMP names the reason (per_metric_series_limit) but publishes no
	// default: none.
	MaxGlobalSeriesPerMetric int `yaml:"max_global_series_per_metric"`
	// AMP: outOfOrderTimeWindowInSeconds of the workspace configuration,
	// none by default. The workspace configuration, when it sets a window,
	// wins over this.
	OutOfOrderTimeWindow model.Duration `yaml:"out_of_order_time_window"`
	// AMP quota: active metrics with metadata per workspace, 20,000.
	MaxGlobalMetadataPerUser int `yaml:"max_global_metadata_per_user"`
	// AMP quota: metadata per metric, 10.
	MaxGlobalMetadataPerMetric int `yaml:"max_global_metadata_per_metric"`
	// Not an AMP quota (AMP publishes none for exemplars): Prometheus's
	// default exemplar storage size.
	MaxGlobalExemplarsPerUser int `yaml:"max_global_exemplars_per_user"`
}

func (l *IngesterLimits) registerFlags(f *flag.FlagSet) {
	f.IntVar(&l.MaxGlobalSeriesPerUser, "ingester.max-global-series-per-user", 10_000_000, "Most active series one workspace may have across the cluster (each ingester enforces its share: this times the replication factor divided by the ingesters). Samples of new series beyond it are refused with 400 (reason per_user_series_limit). AMP quota: 10,000,000 active series per workspace. 0: no limit.")
	f.IntVar(&l.SeriesCapacityMinimum, "ingester.series-capacity-minimum", 2_000_000, "The active-series capacity of a workspace adapts to its use, as AMP's: twice its average of the last 30 minutes, at least this, at most -ingester.max-global-series-per-user; a surge beyond twice the baseline is refused until the baseline catches up. AMP: capacity from 2,000,000. 0: the capacity is -ingester.max-global-series-per-user.")
	f.IntVar(&l.MaxGlobalSeriesPerMetric, "ingester.max-global-series-per-metric", 0, "Most active series of one metric name one workspace may have across the cluster; samples of new series beyond it are refused with 400 (reason per_metric_series_limit). AMP has the limit but publishes no default. 0: no limit.")
	f.IntVar(&l.MaxGlobalMetadataPerUser, "ingester.max-global-metadata-per-user", 20_000, "Most metric names one workspace may have metadata (TYPE, HELP, UNIT) for across the cluster (each ingester enforces its share, as for series). Metadata of further metric names is dropped (reason per_user_metadata_limit) while their samples are stored. AMP quota: 20,000 active metrics with metadata per workspace. 0: no limit.")
	f.IntVar(&l.MaxGlobalMetadataPerMetric, "ingester.max-global-metadata-per-metric", 10, "Most distinct metadata entries one metric name may have in the ingesters; further ones are dropped (reason per_metric_metadata_limit) until older ones expire (-ingester.metadata-retain-period). AMP quota: 10 metadata per metric. 0: no limit.")
	f.IntVar(&l.MaxGlobalExemplarsPerUser, "ingester.max-global-exemplars-per-user", 100_000, "Exemplars one workspace keeps in the ingesters across the cluster (each ingester its share, as for series): a ring buffer per workspace TSDB, the oldest exemplars overwritten first, allocated whole (about 64 bytes per exemplar) once the workspace sends its first exemplar. AMP publishes no exemplar quota; 100,000 is Prometheus's default exemplar storage. 0: exemplars are dropped.")
	f.Var(&l.OutOfOrderTimeWindow, "ingester.out-of-order-time-window", "How far behind the workspace's newest sample (in its ingesters' heads) a sample may be and still be stored, out of order within its series (out-of-order ingestion); older ones are refused (reason sample-out-of-order). A workspace's configuration (outOfOrderTimeWindowInSeconds of UpdateWorkspaceConfiguration) wins over this. AMP: none unless configured. 0: none.")
}

func (l *IngesterLimits) validate() error {
	if l.MaxGlobalSeriesPerUser < 0 || l.MaxGlobalSeriesPerMetric < 0 || l.SeriesCapacityMinimum < 0 {
		return fmt.Errorf("ingester series limits must not be negative")
	}
	if l.MaxGlobalMetadataPerUser < 0 || l.MaxGlobalMetadataPerMetric < 0 || l.MaxGlobalExemplarsPerUser < 0 {
		return fmt.Errorf("ingester metadata and exemplar limits must not be negative")
	}
	if l.OutOfOrderTimeWindow < 0 {
		return fmt.Errorf("ingester.out-of-order-time-window must not be negative")
	}
	return nil
}

func (d *DistributorLimits) registerIngestionFlags(f *flag.FlagSet) {
	f.DurationVar(&d.PastGracePeriod, "validation.past-grace-period", time.Hour, "Samples, histograms and exemplars stamped earlier than now minus this are refused (reason greater_than_max_sample_age); the rest of the request is stored. AMP: metric samples older than 1 hour are not ingested. 0: no limit.")
	f.IntVar(&d.MaxMetadataLength, "validation.max-metadata-length", 1024, "Longest metric name, HELP or UNIT of a metadata entry; longer entries are dropped (reason metadata_too_long). AMP quota: metadata length 1 KB. 0: no limit.")
	f.IntVar(&d.MaxMetadataPerMetric, "validation.max-metadata-per-metric", 10, "Most metadata entries one request may carry for one metric name; the rest are dropped (reason too_many_metadata_per_metric). AMP quota: 10 metadata per metric. 0: no limit.")
	f.Float64Var(&d.IngestionRate, "distributor.ingestion-rate-limit", 170_000, "Samples per second one workspace may send (an exemplar or a metadata entry counts as a sample, and a request as at least one), across all distributors (each allows its share by the number of healthy distributors). A request that does not fit is refused whole with 429 (reason rate_limited). AMP quota: ingestion rate 170,000 samples per second. 0: no limit.")
	f.IntVar(&d.IngestionBurstSize, "distributor.ingestion-burst-size", 1_000_000, "Size of the token bucket of -distributor.ingestion-rate-limit: samples one workspace may send at once after a quiet spell. AMP quota: ingestion burst size 1,000,000.")
	f.BoolVar(&d.AcceptHASamples, "distributor.ha-tracker.enable-for-all-users", true, "Deduplicate high-availability pairs: of the samples carrying both -distributor.ha-tracker.cluster and -distributor.ha-tracker.replica labels, only the elected replica's of each cluster are stored, without the replica label; the others are acknowledged and dropped. Needs -distributor.ha-tracker.enable. AMP deduplicates always.")
	f.StringVar(&d.HAClusterLabel, "distributor.ha-tracker.cluster", "cluster", "Label naming the cluster of a high-availability pair; kept on stored series. AMP: cluster.")
	f.StringVar(&d.HAReplicaLabel, "distributor.ha-tracker.replica", "__replica__", "Label naming the replica of a high-availability pair; dropped from stored series. AMP: __replica__.")
	f.IntVar(&d.HAMaxClusters, "distributor.ha-tracker.max-clusters", 500, "Most high-availability clusters one workspace may have tracked; samples of further clusters are refused with 400. AMP quota: 500 HA clusters per workspace. 0: no limit.")
}

func (d *DistributorLimits) validateIngestion() error {
	if d.PastGracePeriod < 0 {
		return fmt.Errorf("validation.past-grace-period must not be negative")
	}
	if d.MaxMetadataLength < 0 || d.MaxMetadataPerMetric < 0 {
		return fmt.Errorf("metadata limits must not be negative")
	}
	if d.IngestionRate < 0 {
		return fmt.Errorf("distributor.ingestion-rate-limit must not be negative")
	}
	if d.IngestionRate > 0 && d.IngestionBurstSize <= 0 {
		return fmt.Errorf("distributor.ingestion-burst-size must be positive when the ingestion rate is limited")
	}
	if d.AcceptHASamples && (d.HAClusterLabel == "" || d.HAReplicaLabel == "" || d.HAClusterLabel == d.HAReplicaLabel) {
		return fmt.Errorf("distributor.ha-tracker.cluster and distributor.ha-tracker.replica must be two different label names")
	}
	if d.HAMaxClusters < 0 {
		return fmt.Errorf("distributor.ha-tracker.max-clusters must not be negative")
	}
	return nil
}

// PastGracePeriod is how far behind now a sample may be stamped; 0: no limit.
func (o *Overrides) PastGracePeriod(workspace string) time.Duration {
	return o.get(workspace).Distributor.PastGracePeriod
}

// MaxMetadataLength is the longest metadata field accepted; 0: no limit.
func (o *Overrides) MaxMetadataLength(workspace string) int {
	return o.get(workspace).Distributor.MaxMetadataLength
}

// MaxMetadataPerMetric is the most metadata entries per metric name in one request; 0: no limit.
func (o *Overrides) MaxMetadataPerMetric(workspace string) int {
	return o.get(workspace).Distributor.MaxMetadataPerMetric
}

// IngestionRate is the workspace's global ingestion rate (samples/s); 0: no limit.
func (o *Overrides) IngestionRate(workspace string) float64 {
	return o.get(workspace).Distributor.IngestionRate
}

// IngestionBurstSize is the size of the workspace's global token bucket.
func (o *Overrides) IngestionBurstSize(workspace string) int {
	return o.get(workspace).Distributor.IngestionBurstSize
}

// AcceptHASamples tells whether the workspace's HA pairs are deduplicated.
func (o *Overrides) AcceptHASamples(workspace string) bool {
	return o.get(workspace).Distributor.AcceptHASamples
}

// HAClusterLabel names the cluster label of the workspace's HA pairs.
func (o *Overrides) HAClusterLabel(workspace string) string {
	return o.get(workspace).Distributor.HAClusterLabel
}

// HAReplicaLabel names the replica label of the workspace's HA pairs.
func (o *Overrides) HAReplicaLabel(workspace string) string {
	return o.get(workspace).Distributor.HAReplicaLabel
}

// HAMaxClusters is the most HA clusters tracked for the workspace; 0: no limit.
func (o *Overrides) HAMaxClusters(workspace string) int {
	return o.get(workspace).Distributor.HAMaxClusters
}

// MaxGlobalSeriesPerUser is the workspace's active-series quota; 0: no limit.
func (o *Overrides) MaxGlobalSeriesPerUser(workspace string) int {
	return o.get(workspace).Ingester.MaxGlobalSeriesPerUser
}

// SeriesCapacityMinimum is the floor of the workspace's adaptive series
// capacity; 0: the capacity is the quota.
func (o *Overrides) SeriesCapacityMinimum(workspace string) int {
	return o.get(workspace).Ingester.SeriesCapacityMinimum
}

// MaxGlobalSeriesPerMetric is the most active series of one metric name; 0: no limit.
func (o *Overrides) MaxGlobalSeriesPerMetric(workspace string) int {
	return o.get(workspace).Ingester.MaxGlobalSeriesPerMetric
}

// OutOfOrderTimeWindow is the workspace's default out-of-order window; 0: none.
func (o *Overrides) OutOfOrderTimeWindow(workspace string) time.Duration {
	return time.Duration(o.get(workspace).Ingester.OutOfOrderTimeWindow)
}

// MaxGlobalMetadataPerUser is the most metric names with metadata the
// workspace may have; 0: no limit.
func (o *Overrides) MaxGlobalMetadataPerUser(workspace string) int {
	return o.get(workspace).Ingester.MaxGlobalMetadataPerUser
}

// MaxGlobalMetadataPerMetric is the most metadata entries one metric name
// may have; 0: no limit.
func (o *Overrides) MaxGlobalMetadataPerMetric(workspace string) int {
	return o.get(workspace).Ingester.MaxGlobalMetadataPerMetric
}

// MaxGlobalExemplarsPerUser is the most exemplars the workspace keeps; 0:
// none.
func (o *Overrides) MaxGlobalExemplarsPerUser(workspace string) int {
	return o.get(workspace).Ingester.MaxGlobalExemplarsPerUser
}
