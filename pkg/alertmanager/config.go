// Package alertmanager runs an Alertmanager per workspace, built from
// Alertmanager's own packages, on the replicas the alertmanager ring gives
// the workspace (three by default). The replicas share their silences and
// notification log, and snapshot them to object storage; any process
// answers the Alertmanager v2 API of any workspace by forwarding to its
// replicas.
package alertmanager

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"

	"github.com/grafana/dskit/grpcclient"
	"google.golang.org/grpc"

	"github.com/vigil-metrics/vigil/pkg/ringmember"
)

// Config configures the alertmanager.
type Config struct {
	PollInterval    time.Duration `yaml:"poll_interval"`
	PeerTimeout     time.Duration `yaml:"peer_timeout"`
	PersistInterval time.Duration `yaml:"persist_interval"`
	Retention       time.Duration `yaml:"retention"`
	ExternalURL     string        `yaml:"external_url"`

	// Ring is the alertmanager ring: each workspace's Alertmanager runs on
	// the replication factor's instances of its token.
	Ring ringmember.Config `yaml:"ring"`
	// Client dials the alertmanagers a request or a state change is sent
	// to.
	Client grpcclient.Config `yaml:"grpc_client_config"`
}

const (
	// RingName names the alertmanager ring in metrics and logs.
	RingName = "alertmanager"
	// RingKey is the key of the alertmanager ring in the KV store.
	RingKey = "alertmanager-ring"
)

// ringDefaults: three replicas of each workspace's Alertmanager, as AMP
// runs it across three availability zones; a replica that died is
// forgotten soon, so that its workspaces move on.
var ringDefaults = ringmember.Defaults{
	Member:                     "alertmanager",
	ReplicationFactor:          3,
	NumTokens:                  128,
	UnregisterOnShutdown:       true,
	AutoForgetUnhealthyPeriods: 2,
}

// RegisterFlags registers the alertmanager's flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.PollInterval, "alertmanager.poll-interval", 15*time.Second, "How often each alertmanager reads the ring and the workspaces' alert manager definitions: a new definition is in force within this.")
	f.DurationVar(&c.PeerTimeout, "alertmanager.peer-timeout", 15*time.Second, "How long each replica of a workspace waits after the one before it in the ring before it sends a notification, which the notification log they share tells it was sent (Alertmanager's --cluster.peer-timeout).")
	f.DurationVar(&c.PersistInterval, "alertmanager.persist-interval", 15*time.Minute, "How often the first replica of each workspace writes its silences and notification log to object storage (every replica also writes them when it stops).")
	f.DurationVar(&c.Retention, "alertmanager.retention", 120*time.Hour, "How long silences and notification log entries are kept after they end (Alertmanager's --data.retention).")
	f.StringVar(&c.ExternalURL, "alertmanager.external-url", "", "URL the notifications link to (Alertmanager's --web.external-url); {workspace} is replaced by the workspace ID. Empty: http://localhost:9009/workspaces/{workspace}/alertmanager.")
	c.Ring.RegisterFlagsWithPrefix("alertmanager.ring.", ringDefaults, f)
	c.Client.RegisterFlagsWithPrefix("alertmanager.client", f)
}

// Dialer returns how an alertmanager dials the others, with the
// -alertmanager.client.* settings.
func (c *Config) Dialer() (func(addr string) (*grpc.ClientConn, error), error) {
	return ringmember.Dialer(c.Client)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.PollInterval <= 0 || c.PeerTimeout < 0 || c.PersistInterval <= 0 || c.Retention <= 0 {
		return errors.New("alertmanager.poll-interval, persist-interval and retention must be positive, alertmanager.peer-timeout not negative")
	}
	if _, err := c.externalURL("ws"); err != nil {
		return fmt.Errorf("alertmanager.external-url: %w", err)
	}
	if err := c.Client.Validate(); err != nil {
		return fmt.Errorf("alertmanager.client: %w", err)
	}
	return c.Ring.Validate()
}

func (c *Config) externalURL(workspace string) (*url.URL, error) {
	raw := c.ExternalURL
	if raw == "" {
		raw = "http://localhost:9009/workspaces/{workspace}/alertmanager"
	}
	u, err := url.Parse(replaceWorkspace(raw, workspace))
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q is not an http or https URL", raw)
	}
	return u, nil
}
