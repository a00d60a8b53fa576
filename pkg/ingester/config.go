// Package ingester keeps one Prometheus TSDB (head, WAL and local blocks) per
// workspace, appends pushed samples to it and answers queries over it. Each
// ingester is a member of the ingester ring.
package ingester

import (
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"time"

	"github.com/grafana/dskit/flagext"

	"github.com/vigil-metrics/vigil/pkg/ringmember"
)

// Config configures an ingester.
type Config struct {
	Ring ringmember.Config `yaml:"ring"`

	BlockRange       time.Duration `yaml:"block_range"`
	Retention        time.Duration `yaml:"retention_period"`
	IdleTimeout      time.Duration `yaml:"idle_timeout"`
	WALCompression   bool          `yaml:"wal_compression_enabled"`
	WALSync          string        `yaml:"wal_sync"`
	WALReplayWorkers int           `yaml:"wal_replay_concurrency"`
	Isolation        bool          `yaml:"isolation_enabled"`
	QueryStreamBatch int           `yaml:"query_stream_batch_size"`
	ShipInterval     time.Duration `yaml:"ship_interval"`
	DeletionCheck    time.Duration `yaml:"deleted_workspaces_check_interval"`
	// MetadataRetain is how long metric metadata not pushed again is kept.
	MetadataRetain time.Duration `yaml:"metadata_retain_period"`

	InstanceLimits InstanceLimits `yaml:"instance_limits"`

	// The garbage collector of the process, set once the ingester starts
	// (see ApplyRuntime).
	GCPercent   int           `yaml:"gc_percent"`
	MemoryLimit flagext.Bytes `yaml:"memory_limit"`
}

// InstanceLimits protect one ingester process, whatever the workspaces:
// pushes over them are answered 503, which distributors count against the
// quorum and senders retry.
type InstanceLimits struct {
	MaxInflightPushRequests int `yaml:"max_inflight_push_requests"`
	MaxSeries               int `yaml:"max_series"`
	// MemoryLimitNewSeriesRatio is the share of the process's memory limit
	// the live heap may reach before new series are refused.
	MemoryLimitNewSeriesRatio float64 `yaml:"memory_limit_new_series_ratio"`
}

// RegisterFlags registers the ingester flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Ring.RegisterFlagsWithPrefix("ingester.ring.", ringDefaults, f)
	f.DurationVar(&c.BlockRange, "ingester.tsdb.block-range", 2*time.Hour, "Time range of the blocks the head is cut into.")
	f.DurationVar(&c.Retention, "ingester.tsdb.retention-period", 24*time.Hour, "How long an ingester keeps a block after cutting it, counted from the block's end; a block is never removed before it is uploaded. Keep it longer than -querier.query-ingesters-within.")
	f.DurationVar(&c.IdleTimeout, "ingester.tsdb.idle-timeout", time.Hour, "A workspace TSDB with no writes or queries for this long has its head cut into a block and uploaded, and is closed; it is reopened on the next request. 0 disables closing.")
	f.BoolVar(&c.WALCompression, "ingester.tsdb.wal-compression-enabled", true, "Compress WAL records.")
	f.StringVar(&c.WALSync, "ingester.tsdb.wal-sync", WALSyncNone, "When a push is acknowledged. none: once its samples are written to the WAL file (they survive the process being killed, not the host losing power), as Prometheus and Mimir do. always: once the WAL is fsynced to disk; concurrent pushes share one fsync.")
	f.BoolVar(&c.Isolation, "ingester.tsdb.isolation-enabled", false, "Read isolation in the TSDB head: a query never sees part of a push. Off by default, as in Cortex and Mimir ingesters: a query may see part of a push still being appended (with replication it merges replicas anyway), and isolation costs every series a ring of append IDs (about 230 bytes per series measured with 480 samples per series) and every append CPU.")
	f.IntVar(&c.WALReplayWorkers, "ingester.tsdb.wal-replay-concurrency", 0, "Workspace WALs replayed at once at start-up. 0: one per CPU.")
	f.DurationVar(&c.ShipInterval, "ingester.tsdb.ship-interval", time.Minute, "How often new blocks are uploaded to object storage; a failed upload is retried at the next one.")
	f.DurationVar(&c.DeletionCheck, "ingester.tsdb.deleted-workspaces-check-interval", 5*time.Minute, "How often the ingester looks in object storage for the deletion marks of the workspaces it holds, and removes the local TSDB and WAL of deleted ones.")
	f.DurationVar(&c.MetadataRetain, "ingester.metadata-retain-period", 10*time.Minute, "How long metric metadata (TYPE, HELP, UNIT) is kept after it was last pushed. Prometheus sends its metadata every minute (metadata_config send_interval): keep this well above the senders' interval.")
	f.IntVar(&c.QueryStreamBatch, "ingester.query-stream-batch-size", 128, "Series per message when streaming query results to queriers.")
	f.IntVar(&c.InstanceLimits.MaxInflightPushRequests, "ingester.instance-limits.max-inflight-push-requests", 30000, "Most pushes this ingester appends at once; more are refused with 503. 0: no limit.")
	f.IntVar(&c.GCPercent, "ingester.gc-percent", 50, "Garbage-collection target of a process that runs an ingester (Go's GOGC): the heap may grow this many percent over the live data before a collection. The head's series are nearly all of the live data and change little, so 50 (not Go's 100) keeps about a sixth less resident memory per series for about the same CPU (make bench: 2.3 KB against 2.7 KB). The GOGC environment variable, when set, wins.")
	c.MemoryLimit = 0
	f.Var(&c.MemoryLimit, "ingester.memory-limit", "Soft memory limit of a process that runs an ingester (Go's GOMEMLIMIT), for example 8GiB: nearing it, the garbage collector runs more often rather than let the heap grow past it. Set it to about 90% of the container's memory. 0: none. The GOMEMLIMIT environment variable, when set, wins.")
	f.Float64Var(&c.InstanceLimits.MemoryLimitNewSeriesRatio, "ingester.instance-limits.memory-limit-new-series-ratio", 0.8, "With a memory limit (-ingester.memory-limit or GOMEMLIMIT), samples of new series are refused with 503 once the live heap (what the last garbage collection found in use) reaches this share of it; samples of existing series are stored. It keeps a surge of new series from getting the process killed: past it the collector would run without end. The heap is read every second. 0: never.")
	f.IntVar(&c.InstanceLimits.MaxSeries, "ingester.instance-limits.max-series", 0, "Most series this ingester holds in memory, over every workspace; samples of new series beyond it are refused with 503 (samples of existing series are stored). WAL replay is never refused. Size it to the memory of the host (a few KB per series). 0: no limit.")
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
	if c.ShipInterval <= 0 || c.DeletionCheck <= 0 {
		return fmt.Errorf("ingester.tsdb.ship-interval and ingester.tsdb.deleted-workspaces-check-interval must be positive")
	}
	if c.MetadataRetain <= 0 {
		return fmt.Errorf("ingester.metadata-retain-period must be positive")
	}
	if c.QueryStreamBatch <= 0 {
		return fmt.Errorf("ingester.query-stream-batch-size must be positive")
	}
	if c.WALSync != WALSyncNone && c.WALSync != WALSyncAlways {
		return fmt.Errorf("unsupported ingester.tsdb.wal-sync %q (supported: %s, %s)", c.WALSync, WALSyncNone, WALSyncAlways)
	}
	if c.GCPercent <= 0 {
		return fmt.Errorf("ingester.gc-percent must be positive, got %d", c.GCPercent)
	}
	if c.InstanceLimits.MaxInflightPushRequests < 0 || c.InstanceLimits.MaxSeries < 0 {
		return fmt.Errorf("ingester instance limits must not be negative")
	}
	if r := c.InstanceLimits.MemoryLimitNewSeriesRatio; r < 0 || r > 1 {
		return fmt.Errorf("ingester.instance-limits.memory-limit-new-series-ratio must be between 0 and 1, got %g", r)
	}
	return nil
}

// ApplyRuntime sets the process's garbage-collection target and memory
// limit from the configuration, unless the GOGC or GOMEMLIMIT environment
// variables set them. It returns what it set, for the log.
func (c *Config) ApplyRuntime() (gcPercent int, memoryLimit int64) {
	gcPercent, memoryLimit = -1, -1
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(c.GCPercent)
		gcPercent = c.GCPercent
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok && c.MemoryLimit > 0 {
		memoryLimit = int64(min(uint64(c.MemoryLimit), math.MaxInt64))
		debug.SetMemoryLimit(memoryLimit)
	}
	return gcPercent, memoryLimit
}
