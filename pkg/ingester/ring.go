package ingester

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/netutil"
	"github.com/grafana/dskit/ring"
)

const (
	// RingName names the ingester ring in metrics and logs.
	RingName = "ingester"
	// RingKey is the key of the ingester ring in the KV store.
	RingKey = "ingester-ring"
)

// RingConfig configures the ingester ring: how ingesters join it and how
// distributors and queriers read it.
type RingConfig struct {
	KVStore              kv.Config     `yaml:"kvstore"`
	HeartbeatPeriod      time.Duration `yaml:"heartbeat_period"`
	HeartbeatTimeout     time.Duration `yaml:"heartbeat_timeout"`
	ReplicationFactor    int           `yaml:"replication_factor"`
	ZoneAwarenessEnabled bool          `yaml:"zone_awareness_enabled"`

	InstanceID             string              `yaml:"instance_id"`
	InstanceAddr           string              `yaml:"instance_addr"`
	InstancePort           int                 `yaml:"instance_port"`
	InstanceInterfaceNames flagext.StringSlice `yaml:"instance_interface_names"`
	InstanceZone           string              `yaml:"instance_availability_zone"`
	NumTokens              int                 `yaml:"num_tokens"`
}

// RegisterFlags registers the ring flags under -ingester.ring.
func (c *RingConfig) RegisterFlags(f *flag.FlagSet) {
	// Only the memberlist store is offered: Vigil needs no Consul or etcd.
	f.StringVar(&c.KVStore.Store, "ingester.ring.store", "memberlist", "Key-value store of the ring. Supported: memberlist.")
	f.StringVar(&c.KVStore.Prefix, "ingester.ring.prefix", "collectors/", "Key prefix of the ring in the key-value store.")
	f.DurationVar(&c.HeartbeatPeriod, "ingester.ring.heartbeat-period", 5*time.Second, "How often an ingester refreshes its heartbeat in the ring.")
	f.DurationVar(&c.HeartbeatTimeout, "ingester.ring.heartbeat-timeout", time.Minute, "An ingester whose heartbeat is older than this is unhealthy and skipped.")
	f.IntVar(&c.ReplicationFactor, "ingester.ring.replication-factor", 1, "Number of ingesters each series is written to. Use 3 with zone awareness in a cluster, as AMP replicates ingested data three ways across availability zones.")
	f.BoolVar(&c.ZoneAwarenessEnabled, "ingester.ring.zone-awareness-enabled", false, "Place the replicas of each series in different zones.")
	f.StringVar(&c.InstanceID, "ingester.ring.instance-id", "", "This ingester's unique ID in the ring. Empty: the hostname.")
	f.StringVar(&c.InstanceAddr, "ingester.ring.instance-addr", "", "Address other components reach this ingester's gRPC server at. Empty: the first private address of -ingester.ring.instance-interface-names.")
	f.IntVar(&c.InstancePort, "ingester.ring.instance-port", 0, "Port advertised in the ring. 0: the gRPC listen port.")
	f.Var(&c.InstanceInterfaceNames, "ingester.ring.instance-interface-names", "Network interfaces to take the instance address from. Empty: the interfaces with a private address, else eth0, en0 and lo.")
	f.StringVar(&c.InstanceZone, "ingester.ring.instance-zone", "", "This ingester's availability zone. Required with zone awareness.")
	f.IntVar(&c.NumTokens, "ingester.ring.num-tokens", 128, "Number of tokens each ingester owns in the ring.")
}

// Validate checks the configuration.
func (c *RingConfig) Validate() error {
	if c.KVStore.Store != "memberlist" {
		return fmt.Errorf("unsupported ingester.ring.store %q (supported: memberlist)", c.KVStore.Store)
	}
	if c.ReplicationFactor < 1 {
		return fmt.Errorf("ingester.ring.replication-factor must be at least 1, got %d", c.ReplicationFactor)
	}
	if c.HeartbeatTimeout <= 0 {
		return fmt.Errorf("ingester.ring.heartbeat-timeout must be positive")
	}
	if c.NumTokens <= 0 {
		return fmt.Errorf("ingester.ring.num-tokens must be positive")
	}
	return nil
}

// ValidateInstance checks the settings an ingester (not a ring reader) needs.
func (c *RingConfig) ValidateInstance() error {
	if c.ZoneAwarenessEnabled && c.InstanceZone == "" {
		return fmt.Errorf("ingester.ring.instance-zone is required when -ingester.ring.zone-awareness-enabled is set")
	}
	return nil
}

// ToRingConfig returns the dskit ring configuration readers use.
func (c *RingConfig) ToRingConfig() ring.Config {
	var rc ring.Config
	flagext.DefaultValues(&rc)
	rc.KVStore = c.KVStore
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ReplicationFactor = c.ReplicationFactor
	rc.ZoneAwarenessEnabled = c.ZoneAwarenessEnabled
	return rc
}

func (c *RingConfig) lifecyclerConfig(grpcPort int, logger log.Logger) (ring.BasicLifecyclerConfig, error) {
	id := c.InstanceID
	if id == "" {
		hostname, err := os.Hostname()
		if err != nil {
			return ring.BasicLifecyclerConfig{}, fmt.Errorf("ingester instance id from hostname: %w", err)
		}
		id = hostname
	}
	ifaces := []string(c.InstanceInterfaceNames)
	if len(ifaces) == 0 {
		ifaces = netutil.PrivateNetworkInterfacesWithFallback([]string{"eth0", "en0", "lo"}, logger)
	}
	addr, err := ring.GetInstanceAddr(c.InstanceAddr, ifaces, logger, false)
	if err != nil {
		return ring.BasicLifecyclerConfig{}, fmt.Errorf("ingester instance address: %w", err)
	}
	port := ring.GetInstancePort(c.InstancePort, grpcPort)
	return ring.BasicLifecyclerConfig{
		ID:                  id,
		Addr:                net.JoinHostPort(addr, strconv.Itoa(port)),
		Zone:                c.InstanceZone,
		HeartbeatPeriod:     c.HeartbeatPeriod,
		HeartbeatTimeout:    c.HeartbeatTimeout,
		TokensObservePeriod: 0,
		NumTokens:           c.NumTokens,
	}, nil
}

// joiningDelegate registers the instance as JOINING whatever state the ring
// or the tokens file remembers: the ingester turns ACTIVE itself once its
// WAL is replayed and it can serve.
type joiningDelegate struct {
	ring.BasicLifecyclerDelegate
}

func (d joiningDelegate) OnRingInstanceRegister(l *ring.BasicLifecycler, desc ring.Desc, exists bool, id string, inst ring.InstanceDesc) (ring.InstanceState, ring.Tokens) {
	_, tokens := d.BasicLifecyclerDelegate.OnRingInstanceRegister(l, desc, exists, id, inst)
	return ring.JOINING, tokens
}

func newLifecyclerDelegate(numTokens int, tokensPath string, heartbeatTimeout time.Duration, logger log.Logger) ring.BasicLifecyclerDelegate {
	var d ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(ring.JOINING, numTokens)
	d = ring.NewAutoForgetDelegate(10*heartbeatTimeout, d, logger)
	d = ring.NewTokensPersistencyDelegate(tokensPath, ring.JOINING, d, logger)
	d = ring.NewLeaveOnStoppingDelegate(d, logger)
	level.Debug(logger).Log("msg", "ingester ring delegate ready", "tokens_file", tokensPath)
	return joiningDelegate{d}
}
