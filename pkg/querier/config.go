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
}

// RegisterFlags registers the querier flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Timeout, "querier.timeout", 2*time.Minute, "Maximum time one query may run.")
	f.IntVar(&c.MaxSamples, "querier.max-samples", 50_000_000, "Maximum samples one query may load into memory. AMP quota: 50,000,000 samples fetched per query.")
	f.DurationVar(&c.LookbackDelta, "querier.lookback-delta", 5*time.Minute, "How far back an instant vector selector looks for the latest sample, as Prometheus's -query.lookback-delta.")
	f.IntVar(&c.MaxConcurrent, "querier.max-concurrent", 20, "Maximum queries evaluated at once by this querier.")
	f.DurationVar(&c.DefaultEvalInterval, "querier.default-evaluation-interval", time.Minute, "Step assumed for subqueries that do not give one.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Timeout <= 0 || c.MaxSamples <= 0 || c.LookbackDelta <= 0 || c.MaxConcurrent <= 0 || c.DefaultEvalInterval <= 0 {
		return fmt.Errorf("querier timeout, max samples, lookback delta, max concurrency and default evaluation interval must all be positive")
	}
	return nil
}
