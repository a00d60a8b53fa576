// Package distributor receives remote-write requests, validates their series,
// shards them by series hash over the ingester ring and replicates them,
// acknowledging a write only once a quorum of ingesters stored it.
package distributor

import (
	"flag"
	"fmt"
	"time"

	"github.com/vigil-metrics/vigil/pkg/ringmember"
)

const (
	// RingName names the distributor ring in metrics and logs.
	RingName = "distributor"
	// RingKey is the key of the distributor ring in the KV store.
	RingKey = "distributor-ring"
)

// ringDefaults are the distributor ring's flag defaults. The ring only
// counts the healthy distributors, which share each workspace's ingestion
// rate: one token each, and a distributor leaves it on shutdown and is
// forgotten soon after it crashes.
var ringDefaults = ringmember.Defaults{
	Member:                     "distributor",
	ReplicationFactor:          1,
	NumTokens:                  1,
	UnregisterOnShutdown:       true,
	AutoForgetUnhealthyPeriods: 2,
}

// Config configures a distributor.
type Config struct {
	MaxRequestSizeBytes      int           `yaml:"max_request_size_bytes"`
	MaxDecompressedSizeBytes int           `yaml:"max_decompressed_request_size_bytes"`
	RemoteTimeout            time.Duration `yaml:"remote_timeout"`

	InstanceLimits InstanceLimits `yaml:"instance_limits"`

	Ring      ringmember.Config `yaml:"ring"`
	HATracker HATrackerConfig   `yaml:"ha_tracker"`
}

// InstanceLimits protect one distributor process, whatever the workspaces:
// requests over them are answered 503, which senders retry.
type InstanceLimits struct {
	MaxInflightPushRequests      int `yaml:"max_inflight_push_requests"`
	MaxInflightPushRequestsBytes int `yaml:"max_inflight_push_requests_bytes"`
}

// RegisterFlags registers the distributor flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Ring.RegisterFlagsWithPrefix("distributor.ring.", ringDefaults, f)
	c.HATracker.RegisterFlags(f)
	f.IntVar(&c.MaxRequestSizeBytes, "distributor.max-request-size-bytes", 1<<20, "Largest remote-write request body accepted, as sent (compressed). AMP quota: request size 1 MB.")
	f.IntVar(&c.MaxDecompressedSizeBytes, "distributor.max-decompressed-request-size-bytes", 16<<20, "Largest remote-write request accepted after snappy decompression.")
	f.DurationVar(&c.RemoteTimeout, "distributor.remote-timeout", 5*time.Second, "Timeout of one push to one ingester.")
	f.IntVar(&c.InstanceLimits.MaxInflightPushRequests, "distributor.instance-limits.max-inflight-push-requests", 2000, "Most remote-write requests this process handles at once, from their arrival (before their bodies are read) until every replica answered; more are refused with 503 (senders retry). 0: no limit.")
	f.IntVar(&c.InstanceLimits.MaxInflightPushRequestsBytes, "distributor.instance-limits.max-inflight-push-requests-bytes", 1<<30, "Most memory the requests in flight in this process may take: remote-write bodies as sent, decompressed, decoded and rewritten (HA deduplication), and the bodies of signed requests (-auth.mode=sigv4) and control-plane calls, which the front door reads before their handlers. One budget for the whole process, whatever its targets. A request that would go over is refused with 503 before its memory is allocated (senders retry). 0: no limit.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MaxRequestSizeBytes <= 0 || c.MaxDecompressedSizeBytes <= 0 {
		return fmt.Errorf("distributor request size limits must be positive")
	}
	if c.RemoteTimeout <= 0 {
		return fmt.Errorf("distributor.remote-timeout must be positive")
	}
	if c.InstanceLimits.MaxInflightPushRequests < 0 || c.InstanceLimits.MaxInflightPushRequestsBytes < 0 {
		return fmt.Errorf("distributor instance limits must not be negative")
	}
	return c.HATracker.Validate()
}
