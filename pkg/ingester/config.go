// Package ingester keeps one Prometheus TSDB (head, WAL and local blocks) per
// workspace, appends pushed samples to it and answers queries over it. Each
// ingester is a member of the ingester ring.
package ingester

import (
	"flag"
	"fmt"
	"time"

	"github.com/vigil-metrics/vigil/pkg/ringmember"
)

// Config configures an ingester.
type Config struct {
	Ring ringmember.Config `yaml:"ring"`

	BlockRange       time.Duration `yaml:"block_range"`
	Retention        time.Duration `yaml:"retention_period"`
	IdleTimeout      time.Duration `yaml:"idle_timeout"`
	WALCompression   bool          `yaml:"wal_compression_enabled"`
	QueryStreamBatch int           `yaml:"query_stream_batch_size"`
}

// RegisterFlags registers the ingester flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Ring.RegisterFlagsWithPrefix("ingester.ring.", ringDefaults, f)
	f.DurationVar(&c.BlockRange, "ingester.tsdb.block-range", 2*time.Hour, "Time range of the blocks the head is cut into.")
	f.DurationVar(&c.Retention, "ingester.tsdb.retention-period", 24*time.Hour, "How long an ingester keeps local blocks. Until block upload to object storage lands, this bounds how far back queries reach.")
	f.DurationVar(&c.IdleTimeout, "ingester.tsdb.idle-timeout", time.Hour, "A workspace TSDB with no writes or queries for this long is closed; it is reopened (replaying its WAL) on the next request. 0 disables closing.")
	f.BoolVar(&c.WALCompression, "ingester.tsdb.wal-compression-enabled", true, "Compress WAL records.")
	f.IntVar(&c.QueryStreamBatch, "ingester.query-stream-batch-size", 128, "Series per message when streaming query results to queriers.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if err := c.Ring.Validate(); err != nil {
		return err
	}
	if c.BlockRange < time.Minute {
		return fmt.Errorf("ingester.tsdb.block-range must be at least 1m, got %s", c.BlockRange)
	}
	if c.Retention < c.BlockRange {
		return fmt.Errorf("ingester.tsdb.retention-period (%s) must not be shorter than the block range (%s)", c.Retention, c.BlockRange)
	}
	if c.QueryStreamBatch <= 0 {
		return fmt.Errorf("ingester.query-stream-batch-size must be positive")
	}
	return nil
}
