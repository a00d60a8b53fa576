package ingester

import "github.com/vigil-metrics/vigil/pkg/ringmember"

const (
	// RingName names the ingester ring in metrics and logs.
	RingName = "ingester"
	// RingKey is the key of the ingester ring in the KV store.
	RingKey = "ingester-ring"
)

// ringDefaults are the ingester ring's flag defaults. Ingesters hold data:
// they stay in the ring across restarts, so that a restarting zone counts
// as unavailable rather than as gone.
var ringDefaults = ringmember.Defaults{
	Member:                     "ingester",
	ReplicationFactor:          1,
	NumTokens:                  128,
	UnregisterOnShutdown:       false,
	AutoForgetUnhealthyPeriods: 10,
}
