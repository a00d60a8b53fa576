// Package distributor receives remote-write requests, validates their series,
// shards them by series hash over the ingester ring and replicates them,
// acknowledging a write only once a quorum of ingesters stored it.
package distributor

import (
	"flag"
	"fmt"
	"time"
)

// Config configures a distributor.
type Config struct {
	MaxRequestSizeBytes      int           `yaml:"max_request_size_bytes"`
	MaxDecompressedSizeBytes int           `yaml:"max_decompressed_request_size_bytes"`
	RemoteTimeout            time.Duration `yaml:"remote_timeout"`
}

// RegisterFlags registers the distributor flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.MaxRequestSizeBytes, "distributor.max-request-size-bytes", 1<<20, "Largest remote-write request body accepted, as sent (compressed). AMP quota: request size 1 MB.")
	f.IntVar(&c.MaxDecompressedSizeBytes, "distributor.max-decompressed-request-size-bytes", 16<<20, "Largest remote-write request accepted after snappy decompression.")
	f.DurationVar(&c.RemoteTimeout, "distributor.remote-timeout", 5*time.Second, "Timeout of one push to one ingester.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MaxRequestSizeBytes <= 0 || c.MaxDecompressedSizeBytes <= 0 {
		return fmt.Errorf("distributor request size limits must be positive")
	}
	if c.RemoteTimeout <= 0 {
		return fmt.Errorf("distributor.remote-timeout must be positive")
	}
	return nil
}
