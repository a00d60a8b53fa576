// Package compactor keeps each workspace's blocks in object storage in
// shape: it merges the replica blocks ingesters upload for one time range
// into one deduplicated block (vertical compaction), merges those into
// longer blocks (levelled compaction), enforces each workspace's retention,
// removes blocks marked for deletion and partial uploads, deletes the data of
// deleted workspaces, and writes the bucket index that queriers and
// store-gateways read. Workspaces are sharded over the compactor ring.
package compactor

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-metrics/vigil/pkg/ringmember"
)

const (
	// RingName names the compactor ring in metrics and logs.
	RingName = "compactor"
	// RingKey is the key of the compactor ring in the KV store.
	RingKey = "compactor-ring"
)

// ringDefaults: each workspace is compacted by one compactor; compactors
// hold no state worth keeping a ring entry for across restarts.
var ringDefaults = ringmember.Defaults{
	Member:                     "compactor",
	ReplicationFactor:          1,
	NumTokens:                  128,
	UnregisterOnShutdown:       true,
	AutoForgetUnhealthyPeriods: 2,
}

// Config configures the compactor.
type Config struct {
	Ring ringmember.Config `yaml:"ring"`

	BlockRanges            DurationList  `yaml:"block_ranges"`
	CompactionInterval     time.Duration `yaml:"compaction_interval"`
	CleanupInterval        time.Duration `yaml:"cleanup_interval"`
	DeletionDelay          time.Duration `yaml:"deletion_delay"`
	PartialBlockDelay      time.Duration `yaml:"partial_block_deletion_delay"`
	WorkspaceDeletionDelay time.Duration `yaml:"workspace_deletion_delay"`
	FirstLevelWait         time.Duration `yaml:"first_level_compaction_wait_period"`
}

// RegisterFlags registers the compactor flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Ring.RegisterFlagsWithPrefix("compactor.ring.", ringDefaults, f)
	c.BlockRanges = DurationList{2 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	f.Var(&c.BlockRanges, "compactor.block-ranges", "Comma-separated block ranges of the compaction levels: blocks of the first range (the ingesters' -ingester.tsdb.block-range) are merged into blocks of the next, and so on.")
	f.DurationVar(&c.CompactionInterval, "compactor.compaction-interval", time.Hour, "How often each owned workspace is compacted.")
	f.DurationVar(&c.CleanupInterval, "compactor.cleanup-interval", 15*time.Minute, "How often each owned workspace's bucket index is rewritten, retention applied, and marked blocks, partial uploads and deleted workspaces' data removed.")
	f.DurationVar(&c.DeletionDelay, "compactor.deletion-delay", 12*time.Hour, "How long a block marked for deletion (compacted into another, or past retention) stays in object storage before it is deleted, so that queriers and store-gateways holding an older bucket index still find it. Queries skip it from the moment it is marked.")
	f.DurationVar(&c.PartialBlockDelay, "compactor.partial-block-deletion-delay", 24*time.Hour, "A block without meta.json whose newest object is older than this is an upload that failed; it is deleted. Keep it longer than any object-storage outage ingesters must ride out.")
	f.DurationVar(&c.WorkspaceDeletionDelay, "compactor.workspace-deletion-delay", 6*time.Hour, "How long after a workspace is deleted its blocks are deleted from object storage. It is not queryable from the moment it is deleted.")
	f.DurationVar(&c.FirstLevelWait, "compactor.first-level-compaction-wait-period", 25*time.Minute, "Blocks just uploaded by ingesters are left alone this long, so that the copies of every replica arrive before they are merged.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if err := c.Ring.Validate(); err != nil {
		return err
	}
	if len(c.BlockRanges) == 0 {
		return fmt.Errorf("compactor.block-ranges must not be empty")
	}
	for i, r := range c.BlockRanges {
		if r <= 0 || (i > 0 && r%c.BlockRanges[i-1] != 0) {
			return fmt.Errorf("compactor.block-ranges must be positive and each a multiple of the one before, got %s", c.BlockRanges)
		}
	}
	if c.CompactionInterval <= 0 || c.CleanupInterval <= 0 {
		return fmt.Errorf("compactor.compaction-interval and compactor.cleanup-interval must be positive")
	}
	if c.DeletionDelay < 0 || c.PartialBlockDelay < 0 || c.WorkspaceDeletionDelay < 0 || c.FirstLevelWait < 0 {
		return fmt.Errorf("compactor delays must not be negative")
	}
	return nil
}

// DurationList is a comma-separated list of durations.
type DurationList []time.Duration

// String implements flag.Value.
func (d *DurationList) String() string {
	parts := make([]string, len(*d))
	for i, v := range *d {
		parts[i] = v.String()
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value.
func (d *DurationList) Set(s string) error {
	var out DurationList
	for _, p := range strings.Split(s, ",") {
		v, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	*d = out
	return nil
}

// UnmarshalYAML reads the list as a YAML string or sequence.
func (d *DurationList) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err == nil {
		return d.Set(s)
	}
	var list []string
	if err := unmarshal(&list); err != nil {
		return err
	}
	return d.Set(strings.Join(list, ","))
}

// MarshalYAML writes the list as a YAML string.
func (d DurationList) MarshalYAML() (any, error) { return d.String(), nil }

func (d DurationList) millis() []int64 {
	out := make([]int64, len(d))
	for i, v := range d {
		out[i] = v.Milliseconds()
	}
	return out
}
