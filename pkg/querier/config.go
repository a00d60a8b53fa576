// Package querier evaluates PromQL with Prometheus's engine over the series
// held by ingesters, merging the replicated copies of each series into one,
// and serves the Prometheus HTTP query API.
package querier

import (
	"flag"
	"fmt"
	"time"
)

// Config configures a querier.
type Config struct {
	Timeout             time.Duration `yaml:"timeout"`
	MaxSamples          int           `yaml:"max_samples"`
	LookbackDelta       time.Duration `yaml:"lookback_delta"`
	MaxConcurrent       int           `yaml:"max_concurrent"`
	DefaultEvalInterval time.Duration `yaml:"default_evaluation_interval"`

	QueryStoreAfter      time.Duration `yaml:"query_store_after"`
	QueryIngestersWithin time.Duration `yaml:"query_ingesters_within"`
	BucketIndexUpdate    time.Duration `yaml:"bucket_index_update_period"`
	BucketIndexMaxStale  time.Duration `yaml:"bucket_index_max_stale_period"`
	// MaxBlocksWithoutIndex bounds the listing of a workspace without a
	// bucket index.
	MaxBlocksWithoutIndex int `yaml:"max_blocks_without_bucket_index"`
}

// RegisterFlags registers the querier flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Timeout, "querier.timeout", 2*time.Minute, "Maximum time one query may run.")
	f.IntVar(&c.MaxSamples, "querier.max-samples", 50_000_000, "Maximum samples one query may load into memory. AMP quota: 50,000,000 samples fetched per query.")
	f.DurationVar(&c.LookbackDelta, "querier.lookback-delta", 5*time.Minute, "How far back an instant vector selector looks for the latest sample, as Prometheus's -query.lookback-delta.")
	f.IntVar(&c.MaxConcurrent, "querier.max-concurrent", 20, "Maximum queries evaluated at once by this querier.")
	f.DurationVar(&c.DefaultEvalInterval, "querier.default-evaluation-interval", time.Minute, "Step assumed for subqueries that do not give one.")
	f.DurationVar(&c.QueryStoreAfter, "querier.query-store-after", 12*time.Hour, "Only the part of a query older than this is read from object storage (through the store-gateways); newer data is in the ingesters. 0: always read the store.")
	f.DurationVar(&c.QueryIngestersWithin, "querier.query-ingesters-within", 13*time.Hour, "Only the part of a query within this of now is read from the ingesters. Keep it longer than -querier.query-store-after (the overlap covers blocks on their way to object storage) and shorter than -ingester.tsdb.retention-period. 0: always read the ingesters.")
	f.DurationVar(&c.BucketIndexUpdate, "querier.bucket-index-update-period", time.Minute, "How often a queried workspace's bucket index is read again from object storage.")
	f.DurationVar(&c.BucketIndexMaxStale, "querier.bucket-index-max-stale-period", time.Hour, "While object storage cannot be read, a bucket index read this recently still serves queries; an older one fails them.")
	f.IntVar(&c.MaxBlocksWithoutIndex, "querier.max-blocks-without-bucket-index", 1000, "A workspace whose compactor has not written its bucket index yet (a new workspace, or the compactor is down) has its blocks found by listing the bucket, cached as an index is; with more blocks than this, its queries over the store's range fail with 503 (store-consistency-check-failed) rather than list them or answer without them. Ingesters of three zones upload 36 blocks a day.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Timeout <= 0 || c.MaxSamples <= 0 || c.LookbackDelta <= 0 || c.MaxConcurrent <= 0 || c.DefaultEvalInterval <= 0 {
		return fmt.Errorf("querier timeout, max samples, lookback delta, max concurrency and default evaluation interval must all be positive")
	}
	if c.QueryStoreAfter < 0 || c.QueryIngestersWithin < 0 || c.BucketIndexUpdate <= 0 || c.BucketIndexMaxStale <= 0 || c.MaxBlocksWithoutIndex <= 0 {
		return fmt.Errorf("querier store and ingester windows must not be negative, bucket index periods and -querier.max-blocks-without-bucket-index must be positive")
	}
	if c.QueryIngestersWithin > 0 && c.QueryIngestersWithin < c.QueryStoreAfter {
		return fmt.Errorf("-querier.query-ingesters-within (%s) must not be shorter than -querier.query-store-after (%s): data in between would be read from neither", c.QueryIngestersWithin, c.QueryStoreAfter)
	}
	return nil
}
