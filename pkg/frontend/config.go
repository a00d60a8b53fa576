// Package frontend is the query-frontend: it owns the public read routes,
// splits range queries into day-aligned legs evaluated in parallel, serves
// the legs it has seen from a results cache, and queues the work in one
// fair queue per workspace from which queriers pull it over gRPC
// (frontendpb), the model of Mimir's frontend and query-scheduler.
package frontend

import (
	"flag"
	"fmt"
	"time"

	"github.com/grafana/dskit/cache"
)

// Results cache backends.
const (
	BackendInMemory  = "inmemory"
	BackendMemcached = "memcached"
	BackendNone      = "none"
)

// Config configures the query-frontend.
type Config struct {
	MaxOutstandingPerWorkspace int           `yaml:"max_outstanding_requests_per_workspace"`
	SplitInterval              time.Duration `yaml:"split_queries_by_interval"`
	MaxParallelismPerQuery     int           `yaml:"max_parallelism_per_query"`
	MaxRetries                 int           `yaml:"max_retries"`
	MaxCacheFreshness          time.Duration `yaml:"max_cache_freshness"`
	ResultsCache               CacheConfig   `yaml:"results_cache"`
}

// CacheConfig configures the results cache.
type CacheConfig struct {
	Backend      string                      `yaml:"backend"`
	MaxSizeBytes int                         `yaml:"max_size_bytes"`
	TTL          time.Duration               `yaml:"ttl"`
	Memcached    cache.MemcachedClientConfig `yaml:"memcached"`
}

// RegisterFlags registers the query-frontend flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.MaxOutstandingPerWorkspace, "query-frontend.max-outstanding-requests-per-workspace", 100, "Most requests of one workspace queued in the query-frontend, waiting for a querier; more are answered 429 (err-vigil-too-many-outstanding-requests). A split range query counts one per leg.")
	f.DurationVar(&c.SplitInterval, "query-frontend.split-queries-by-interval", 24*time.Hour, "Range queries are split into legs of this interval (aligned to it, at the query's steps), evaluated in parallel and cached per leg. 0: no splitting and no results cache.")
	f.IntVar(&c.MaxParallelismPerQuery, "query-frontend.max-parallelism-per-query", 14, "Most legs of one split range query in flight at once.")
	f.IntVar(&c.MaxRetries, "query-frontend.max-retries", 1, "Times a request answered 5xx, or lost with its querier, is sent again. 4xx answers are never retried.")
	f.DurationVar(&c.MaxCacheFreshness, "query-frontend.max-cache-freshness", 10*time.Minute, "Legs that reach into the most recent this much time are never read from or written to the results cache: their samples may still arrive.")
	f.StringVar(&c.ResultsCache.Backend, "query-frontend.results-cache.backend", BackendInMemory, "Results cache of range query legs: inmemory (a bounded LRU in the process), memcached (shared by every frontend, -query-frontend.results-cache.memcached.*) or none.")
	f.IntVar(&c.ResultsCache.MaxSizeBytes, "query-frontend.results-cache.max-size-bytes", 256<<20, "Most bytes of answers the inmemory results cache holds; the least recently used go first.")
	f.DurationVar(&c.ResultsCache.TTL, "query-frontend.results-cache.ttl", 7*24*time.Hour, "How long a cached leg is kept.")
	c.ResultsCache.Memcached.RegisterFlagsWithPrefix("query-frontend.results-cache.memcached.", f)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MaxOutstandingPerWorkspace <= 0 || c.MaxParallelismPerQuery <= 0 {
		return fmt.Errorf("-query-frontend.max-outstanding-requests-per-workspace and -query-frontend.max-parallelism-per-query must be positive")
	}
	if c.SplitInterval < 0 || c.MaxRetries < 0 || c.MaxCacheFreshness < 0 {
		return fmt.Errorf("-query-frontend.split-queries-by-interval, -query-frontend.max-retries and -query-frontend.max-cache-freshness must not be negative")
	}
	switch c.ResultsCache.Backend {
	case BackendInMemory:
		if c.ResultsCache.MaxSizeBytes <= 0 {
			return fmt.Errorf("-query-frontend.results-cache.max-size-bytes must be positive")
		}
	case BackendMemcached:
		if err := c.ResultsCache.Memcached.Validate(); err != nil {
			return fmt.Errorf("query-frontend results cache: %w", err)
		}
	case BackendNone:
	default:
		return fmt.Errorf("unsupported -query-frontend.results-cache.backend %q (supported: %s, %s, %s)", c.ResultsCache.Backend, BackendInMemory, BackendMemcached, BackendNone)
	}
	return nil
}
