// Package ringmember is how every ring-sharded component joins a dskit hash
// ring and how its clients read it: one configuration registered under a flag
// prefix per ring (-ingester.ring.*, later -store-gateway.sharding-ring.*,
// -ruler.ring.*, ...), the lifecycler with its delegates, and the ring client
// whose status page the admin listener serves. The memberlist KV store is
// handed to the constructors; no component writes into another's config.
package ringmember

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/netutil"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-metrics/vigil/pkg/subservices"
)

// Store is the key-value store of a process's rings: the memberlist KV every
// ring of the process shares. Tests may hand in an in-memory client instead.
type Store struct {
	Memberlist func() (*memberlist.KV, error)
	// Client, when set, is used instead of Memberlist.
	Client kv.Client
}

// Config is one ring: how its members join it and how its clients read it.
type Config struct {
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

	UnregisterOnShutdown       bool `yaml:"unregister_on_shutdown"`
	AutoForgetUnhealthyPeriods int  `yaml:"auto_forget_unhealthy_periods"`
}

// Defaults are the flag defaults that differ from one ring to another.
type Defaults struct {
	// Member names the members in help texts, for example "ingester".
	Member            string
	ReplicationFactor int
	NumTokens         int
	// UnregisterOnShutdown: stateless members leave the ring on shutdown;
	// members holding data stay (as LEAVING) so that a restart is not
	// mistaken for a smaller ring.
	UnregisterOnShutdown       bool
	AutoForgetUnhealthyPeriods int
	// HeartbeatTimeout: 0 is a minute.
	HeartbeatTimeout time.Duration
}

// RegisterFlagsWithPrefix registers the ring's flags as <prefix><name>, for
// example -ingester.ring.replication-factor with prefix "ingester.ring.".
func (c *Config) RegisterFlagsWithPrefix(prefix string, d Defaults, f *flag.FlagSet) {
	m := d.Member
	// Only the memberlist store is offered: Vigil needs no Consul or etcd.
	f.StringVar(&c.KVStore.Store, prefix+"store", "memberlist", "Key-value store of the ring. Supported: memberlist.")
	f.StringVar(&c.KVStore.Prefix, prefix+"prefix", "collectors/", "Key prefix of the ring in the key-value store.")
	f.DurationVar(&c.HeartbeatPeriod, prefix+"heartbeat-period", 5*time.Second, fmt.Sprintf("How often each %s refreshes its heartbeat in the ring.", m))
	timeout := d.HeartbeatTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	f.DurationVar(&c.HeartbeatTimeout, prefix+"heartbeat-timeout", timeout, fmt.Sprintf("An instance of the %s ring whose heartbeat is older than this is unhealthy and skipped.", m))
	f.IntVar(&c.ReplicationFactor, prefix+"replication-factor", d.ReplicationFactor, "Number of instances each key is placed on. Use 3 with zone awareness in a cluster, as AMP replicates ingested data three ways across availability zones.")
	f.BoolVar(&c.ZoneAwarenessEnabled, prefix+"zone-awareness-enabled", false, "Place the replicas of each key in different zones.")
	f.StringVar(&c.InstanceID, prefix+"instance-id", "", fmt.Sprintf("This %s's unique ID in the ring. Empty: the hostname.", m))
	f.StringVar(&c.InstanceAddr, prefix+"instance-addr", "", fmt.Sprintf("Address other components reach this %s's gRPC server at. Empty: the first private address of -%sinstance-interface-names.", m, prefix))
	f.IntVar(&c.InstancePort, prefix+"instance-port", 0, "Port advertised in the ring. 0: the gRPC listen port.")
	f.Var(&c.InstanceInterfaceNames, prefix+"instance-interface-names", "Network interfaces to take the instance address from. Empty: the interfaces with a private address, else eth0, en0 and lo.")
	f.StringVar(&c.InstanceZone, prefix+"instance-zone", "", fmt.Sprintf("This %s's availability zone. Required with zone awareness.", m))
	f.IntVar(&c.NumTokens, prefix+"num-tokens", d.NumTokens, fmt.Sprintf("Number of tokens each %s owns in the ring.", m))
	f.BoolVar(&c.UnregisterOnShutdown, prefix+"unregister-on-shutdown", d.UnregisterOnShutdown,
		fmt.Sprintf("Remove this %s from the ring when it shuts down. When false it stays in the ring as LEAVING and takes its tokens back on restart, so a restart never looks like a smaller ring; set it true only to scale down.", m))
	f.IntVar(&c.AutoForgetUnhealthyPeriods, prefix+"auto-forget-unhealthy-periods", d.AutoForgetUnhealthyPeriods,
		fmt.Sprintf("Remove an instance from the %s ring once its heartbeat is this many heartbeat timeouts old. 0 never removes one: an operator forgets it on the admin listener's ring page.", m))
}

// Validate checks the settings every ring reader needs.
func (c *Config) Validate() error {
	if c.KVStore.Store != "memberlist" {
		return fmt.Errorf("unsupported ring store %q (supported: memberlist)", c.KVStore.Store)
	}
	if c.ReplicationFactor < 1 {
		return fmt.Errorf("ring replication factor must be at least 1, got %d", c.ReplicationFactor)
	}
	if c.HeartbeatTimeout <= 0 {
		return fmt.Errorf("ring heartbeat timeout must be positive")
	}
	if c.NumTokens <= 0 {
		return fmt.Errorf("ring num tokens must be positive")
	}
	if c.AutoForgetUnhealthyPeriods < 0 {
		return fmt.Errorf("ring auto-forget-unhealthy-periods must not be negative")
	}
	return nil
}

// ValidateMember checks the settings a ring member (not only a reader) needs.
func (c *Config) ValidateMember() error {
	if c.ZoneAwarenessEnabled && c.InstanceZone == "" {
		return fmt.Errorf("an instance zone is required when zone awareness is enabled")
	}
	return nil
}

// ToRingConfig returns the dskit ring configuration of a reader, with the
// store taken from kvStore.
func (c *Config) ToRingConfig(kvStore Store) ring.Config {
	var rc ring.Config
	flagext.DefaultValues(&rc)
	rc.KVStore = c.KVStore
	rc.KVStore.MemberlistKV = kvStore.Memberlist
	rc.KVStore.Mock = kvStore.Client
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ReplicationFactor = c.ReplicationFactor
	rc.ZoneAwarenessEnabled = c.ZoneAwarenessEnabled
	return rc
}

// NewRing returns a client of the ring named name, kept at key in kvStore.
// It is a service (it watches the store) and an http.Handler serving the
// ring's status page with its forget action.
func NewRing(c Config, name, key string, kvStore Store, reg prometheus.Registerer, logger log.Logger) (*ring.Ring, error) {
	return NewRingWithStrategy(c, name, key, kvStore, ring.NewDefaultReplicationStrategy(), reg, logger)
}

// NewRingWithStrategy is NewRing with another replication strategy: for
// example one that returns every healthy replica of a key, for readers that
// need only one of them (store-gateways).
func NewRingWithStrategy(c Config, name, key string, kvStore Store, strategy ring.ReplicationStrategy, reg prometheus.Registerer, logger log.Logger) (*ring.Ring, error) {
	rc := c.ToRingConfig(kvStore)
	reg = prometheus.WrapRegistererWithPrefix("vigil_", reg)
	store, err := kv.NewClient(rc.KVStore, ring.GetCodec(), kv.RegistererWithKVName(reg, name+"-ring"), logger)
	if err != nil {
		return nil, fmt.Errorf("create %s ring client: %w", name, err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(rc, name, key, store, strategy, reg, logger)
	if err != nil {
		return nil, fmt.Errorf("create %s ring client: %w", name, err)
	}
	return r, nil
}

// Member describes the instance that joins a ring.
type Member struct {
	// GRPCPort is the port advertised when -<prefix>instance-port is 0.
	GRPCPort int
	// TokensPath keeps the tokens across restarts; empty: not kept.
	TokensPath string
}

// NewLifecycler returns the lifecycler that keeps this instance in the ring
// named name. The instance registers as JOINING, whatever the ring or its
// tokens file remember, and its owner switches it to ACTIVE once it can
// serve. On stop it turns LEAVING and, with UnregisterOnShutdown, leaves.
func NewLifecycler(c Config, name, key string, kvStore Store, m Member, reg prometheus.Registerer, logger log.Logger) (*ring.BasicLifecycler, error) {
	if err := c.ValidateMember(); err != nil {
		return nil, fmt.Errorf("%s ring: %w", name, err)
	}
	lc, err := c.lifecyclerConfig(m.GRPCPort, logger)
	if err != nil {
		return nil, err
	}
	rc := c.ToRingConfig(kvStore)
	client, err := kv.NewClient(rc.KVStore, ring.GetCodec(), kv.RegistererWithKVName(reg, name+"-lifecycler"), logger)
	if err != nil {
		return nil, fmt.Errorf("create %s ring kv client: %w", name, err)
	}
	var d ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(ring.JOINING, c.NumTokens)
	if c.AutoForgetUnhealthyPeriods > 0 {
		d = ring.NewAutoForgetDelegate(time.Duration(c.AutoForgetUnhealthyPeriods)*c.HeartbeatTimeout, d, logger)
	}
	if m.TokensPath != "" {
		d = ring.NewTokensPersistencyDelegate(m.TokensPath, ring.JOINING, d, logger)
	}
	d = ring.NewLeaveOnStoppingDelegate(d, logger)
	l, err := ring.NewBasicLifecycler(lc, name, key, client, joiningDelegate{d}, logger, reg)
	if err != nil {
		return nil, fmt.Errorf("create %s lifecycler: %w", name, err)
	}
	return l, nil
}

func (c *Config) lifecyclerConfig(grpcPort int, logger log.Logger) (ring.BasicLifecyclerConfig, error) {
	id := c.InstanceID
	if id == "" {
		hostname, err := os.Hostname()
		if err != nil {
			return ring.BasicLifecyclerConfig{}, fmt.Errorf("instance id from hostname: %w", err)
		}
		id = hostname
	}
	ifaces := []string(c.InstanceInterfaceNames)
	if len(ifaces) == 0 {
		ifaces = netutil.PrivateNetworkInterfacesWithFallback([]string{"eth0", "en0", "lo"}, logger)
	}
	addr, err := ring.GetInstanceAddr(c.InstanceAddr, ifaces, logger, false)
	if err != nil {
		return ring.BasicLifecyclerConfig{}, fmt.Errorf("instance address: %w", err)
	}
	port := ring.GetInstancePort(c.InstancePort, grpcPort)
	return ring.BasicLifecyclerConfig{
		ID:                              id,
		Addr:                            net.JoinHostPort(addr, strconv.Itoa(port)),
		Zone:                            c.InstanceZone,
		HeartbeatPeriod:                 c.HeartbeatPeriod,
		HeartbeatTimeout:                c.HeartbeatTimeout,
		TokensObservePeriod:             0,
		NumTokens:                       c.NumTokens,
		KeepInstanceInTheRingOnShutdown: !c.UnregisterOnShutdown,
	}, nil
}

// joiningDelegate registers the instance as JOINING whatever state the ring
// or the tokens file remembers.
type joiningDelegate struct {
	ring.BasicLifecyclerDelegate
}

func (d joiningDelegate) OnRingInstanceRegister(l *ring.BasicLifecycler, desc ring.Desc, exists bool, id string, inst ring.InstanceDesc) (ring.InstanceState, ring.Tokens) {
	_, tokens := d.BasicLifecyclerDelegate.OnRingInstanceRegister(l, desc, exists, id, inst)
	return ring.JOINING, tokens
}

// ActiveMember runs a lifecycler whose instance serves as soon as it joins:
// it switches the instance to ACTIVE once registered, and is running once
// r, a client of the same ring, sees it ACTIVE. A start that fails on the
// way stops the lifecycler: the instance leaves the ring (or turns LEAVING,
// as its configuration says) and heartbeats no more.
type ActiveMember struct {
	services.Service
	lifecycler *ring.BasicLifecycler
	ring       ring.ReadRing
	subs       *subservices.Group
}

// NewActiveMember returns the service of lifecycler l, read back through r.
func NewActiveMember(l *ring.BasicLifecycler, r ring.ReadRing) *ActiveMember {
	m := &ActiveMember{lifecycler: l, ring: r, subs: subservices.NewGroup(l)}
	m.Service = services.NewIdleService(subservices.UndoFailedStart(m.starting, m.stopping), m.stopping)
	return m
}

// Join returns the ActiveMember that keeps this instance in the ring named
// name, read back through r: every component whose instances serve as soon
// as they join (all but the ingester, which joins with its own states)
// joins its ring this way.
func Join(c Config, name, key string, kvStore Store, r ring.ReadRing, m Member, reg prometheus.Registerer, logger log.Logger) (*ActiveMember, error) {
	l, err := NewLifecycler(c, name, key, kvStore, m, reg, logger)
	if err != nil {
		return nil, err
	}
	return NewActiveMember(l, r), nil
}

// InstanceID is this member's ID in the ring.
func (m *ActiveMember) InstanceID() string { return m.lifecycler.GetInstanceID() }

func (m *ActiveMember) starting(ctx context.Context) error {
	if err := m.subs.Start(ctx); err != nil {
		return err
	}
	if err := m.lifecycler.ChangeState(ctx, ring.ACTIVE); err != nil {
		return err
	}
	for {
		if s, err := m.ring.GetInstanceState(m.InstanceID()); err == nil && s == ring.ACTIVE {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never saw this instance ACTIVE in the ring: %w", m.InstanceID(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (m *ActiveMember) stopping(error) error {
	return m.subs.Stop()
}

// NewClientPool returns a dskit client pool for the instances of r, each
// client made by factory and health-checked every period; the gauge counts
// the pooled clients. component names the pool in logs and metrics.
func NewClientPool(component string, period time.Duration, r ring.ReadRing, factory ringclient.PoolInstFunc, clients prometheus.Gauge, logger log.Logger) *ringclient.Pool {
	cfg := ringclient.PoolConfig{CheckInterval: period, HealthCheckEnabled: true, HealthCheckTimeout: time.Second}
	return ringclient.NewPool(component, cfg, ringclient.NewRingServiceDiscovery(r), factory, clients, logger)
}

// PooledClient returns the client of a ring instance from pool, as the type
// its component expects.
func PooledClient[T any](pool *ringclient.Pool, inst ring.InstanceDesc, component string) (T, error) {
	var zero T
	c, err := pool.GetClientForInstance(inst)
	if err != nil {
		return zero, err
	}
	t, ok := c.(T)
	if !ok {
		return zero, fmt.Errorf("pooled client for %s is %T, not a %s client", inst.Addr, c, component)
	}
	return t, nil
}
