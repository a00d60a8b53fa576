// Package storegateway serves the blocks of object storage to queriers.
// Store-gateways form a ring (RF 3 across zones in a cluster); each block of
// each workspace belongs to the replicas its key maps to. A store-gateway
// keeps a block's meta.json and index on local disk, opens the index when a
// query first needs it and closes it when idle, and reads chunks by byte
// ranges from object storage: no block's chunks are ever downloaded whole.
package storegateway

import (
	"flag"
	"fmt"
	"time"

	"github.com/vigil-metrics/vigil/pkg/ringmember"
)

const (
	// RingName names the store-gateway ring in metrics and logs.
	RingName = "store-gateway"
	// RingKey is the key of the store-gateway ring in the KV store.
	RingKey = "store-gateway-ring"
)

var ringDefaults = ringmember.Defaults{
	Member:                     "store-gateway",
	ReplicationFactor:          1,
	NumTokens:                  128,
	UnregisterOnShutdown:       true,
	AutoForgetUnhealthyPeriods: 10,
}

// Config configures a store-gateway.
type Config struct {
	Ring ringmember.Config `yaml:"ring"`

	SyncInterval     time.Duration `yaml:"sync_interval"`
	IndexIdleTimeout time.Duration `yaml:"index_idle_timeout"`
	ChunkReadAhead   int           `yaml:"chunk_read_ahead_bytes"`
	SeriesBatch      int           `yaml:"series_batch_size"`
}

// RegisterFlags registers the store-gateway flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Ring.RegisterFlagsWithPrefix("store-gateway.ring.", ringDefaults, f)
	f.DurationVar(&c.SyncInterval, "store-gateway.sync-interval", 15*time.Minute, "How often each store-gateway reads the bucket index of every workspace, downloads the index of the blocks it owns and removes the local copies of blocks it no longer owns or that were deleted. A block a query needs before it is synced is fetched then.")
	f.DurationVar(&c.IndexIdleTimeout, "store-gateway.index-idle-timeout", time.Hour, "A block index no query used for this long is closed (it stays on local disk).")
	f.IntVar(&c.ChunkReadAhead, "store-gateway.chunk-read-ahead-bytes", 512<<10, "Bytes of a chunk file each range read from object storage fetches, from the chunk a query needs on: the following chunks, usually read next, come with it.")
	f.IntVar(&c.SeriesBatch, "store-gateway.series-batch-size", 128, "Series per message when streaming to queriers.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if err := c.Ring.Validate(); err != nil {
		return err
	}
	if c.SyncInterval <= 0 || c.IndexIdleTimeout <= 0 {
		return fmt.Errorf("store-gateway.sync-interval and store-gateway.index-idle-timeout must be positive")
	}
	if c.ChunkReadAhead < 0 || c.SeriesBatch <= 0 {
		return fmt.Errorf("store-gateway.chunk-read-ahead-bytes must not be negative and store-gateway.series-batch-size must be positive")
	}
	return nil
}
