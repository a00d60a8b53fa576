// Package vigil assembles Vigil: the root configuration, the module graph and
// the wiring between components. It is the only package that knows them all.
package vigil

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/server"
	"gopkg.in/yaml.v3"

	"github.com/vigil-metrics/vigil/pkg/alertmanager"
	"github.com/vigil-metrics/vigil/pkg/api"
	"github.com/vigil-metrics/vigil/pkg/audit"
	"github.com/vigil-metrics/vigil/pkg/compactor"
	"github.com/vigil-metrics/vigil/pkg/controlplane"
	"github.com/vigil-metrics/vigil/pkg/distributor"
	"github.com/vigil-metrics/vigil/pkg/frontend"
	"github.com/vigil-metrics/vigil/pkg/ingester"
	"github.com/vigil-metrics/vigil/pkg/ingester/client"
	"github.com/vigil-metrics/vigil/pkg/limits"
	"github.com/vigil-metrics/vigil/pkg/querier"
	"github.com/vigil-metrics/vigil/pkg/querier/worker"
	"github.com/vigil-metrics/vigil/pkg/querylog"
	"github.com/vigil-metrics/vigil/pkg/ruler"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	"github.com/vigil-metrics/vigil/pkg/storegateway"
	sgclient "github.com/vigil-metrics/vigil/pkg/storegateway/client"
)

// Config is the root configuration: one section per component plus the
// settings every component shares (target, data directory).
type Config struct {
	Target  flagext.StringSliceCSV `yaml:"target"`
	DataDir string                 `yaml:"data_dir"`

	Auth               api.Config             `yaml:"auth"`
	Audit              audit.Config           `yaml:"audit"`
	Server             server.Config          `yaml:"server"`
	Admin              AdminConfig            `yaml:"admin"`
	Memberlist         memberlist.KVConfig    `yaml:"memberlist"`
	Storage            bucket.Config          `yaml:"storage"`
	ControlPlane       controlplane.Config    `yaml:"controlplane"`
	Distributor        distributor.Config     `yaml:"distributor"`
	Ingester           ingester.Config        `yaml:"ingester"`
	IngesterClient     client.Config          `yaml:"ingester_client"`
	Querier            querier.Config         `yaml:"querier"`
	FrontendWorker     worker.Config          `yaml:"frontend_worker"`
	Frontend           frontend.Config        `yaml:"frontend"`
	QueryLogging       querylog.Config        `yaml:"query_logging"`
	VendedLogs         querylog.Config        `yaml:"vended_logs"`
	Compactor          compactor.Config       `yaml:"compactor"`
	Ruler              ruler.Config           `yaml:"ruler"`
	Alertmanager       alertmanager.Config    `yaml:"alertmanager"`
	StoreGateway       storegateway.Config    `yaml:"store_gateway"`
	StoreGatewayClient sgclient.Config        `yaml:"store_gateway_client"`
	Limits             limits.Limits          `yaml:"limits"`
	Overrides          limits.OverridesConfig `yaml:"limits_overrides"`
}

// RegisterFlags registers every flag with its default. Defaults live here and
// in the components' RegisterFlags only.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Target = []string{All}
	f.Var(&c.Target, "target", "Comma-separated modules to run: all (default), alertmanager, api, compactor, distributor, ingester, querier, query-frontend, ruler, store-gateway.")
	f.StringVar(&c.DataDir, "data-dir", "./data", "Root directory of all local state: ingester TSDBs and WALs, ring tokens, and the filesystem object-storage backend.")

	c.Auth.RegisterFlags(f)
	c.Audit.RegisterFlags(f)
	c.Server.RegisterFlags(f)
	// The public port listens on loopback unless told otherwise: with the
	// default -auth.mode=none, whoever reaches it has full access.
	c.Server.HTTPListenAddress = "127.0.0.1"
	f.Lookup("server.http-listen-address").DefValue = c.Server.HTTPListenAddress
	// So does the internal gRPC port, which trusts every caller in every
	// auth mode: a cluster binds it to its private network on purpose.
	c.Server.GRPCListenAddress = "127.0.0.1"
	f.Lookup("server.grpc-listen-address").DefValue = c.Server.GRPCListenAddress
	c.Admin.RegisterFlags(f)
	c.Memberlist.RegisterFlags(f)
	// Gossip too: a peer that joins the ring can take writes and queries.
	// (A list flag appends to its default, so LoadConfig fills it in when
	// nothing set it.)
	f.Lookup("memberlist.bind-addr").Usage = "IP address to listen on for gossip messages. Multiple addresses may be specified. Defaults to 127.0.0.1: a cluster sets its private address (or 0.0.0.0)."
	c.Storage.RegisterFlags(f)
	c.ControlPlane.RegisterFlags(f)
	c.Distributor.RegisterFlags(f)
	c.Ingester.RegisterFlags(f)
	c.IngesterClient.RegisterFlags(f)
	c.Querier.RegisterFlags(f)
	c.FrontendWorker.RegisterFlags(f)
	c.Frontend.RegisterFlags(f)
	c.QueryLogging.RegisterFlags(f)
	c.VendedLogs.RegisterVendedFlags(f)
	c.Compactor.RegisterFlags(f)
	c.Ruler.RegisterFlags(f)
	c.Alertmanager.RegisterFlags(f)
	c.StoreGateway.RegisterFlags(f)
	c.StoreGatewayClient.RegisterFlags(f)
	c.Limits.RegisterFlags(f)
	c.Overrides.RegisterFlags(f)

	// Vigil's defaults for flags its libraries register.
	overrideDefault(f, "server.http-listen-port", "9009")
	overrideDefault(f, "server.grpc-listen-port", "9095")
	overrideDefault(f, "server.grpc-max-recv-msg-size-bytes", fmt.Sprint(100<<20))
	overrideDefault(f, "server.grpc-max-send-msg-size-bytes", fmt.Sprint(100<<20))
	overrideDefault(f, "server.graceful-shutdown-timeout", "10s")
	// Longer than -querier.timeout, so a slow query gets its answer (or its
	// timeout error) rather than a dropped connection.
	overrideDefault(f, "server.http-write-timeout", "3m")
	if fl := f.Lookup("server.register-instrumentation"); fl != nil {
		fl.Usage = "Ignored: /metrics is always served, and pprof only on the admin listener (-admin.listen-port)."
	}
}

func overrideDefault(f *flag.FlagSet, name, value string) {
	// A renamed library flag leaves its default unchanged; TestHelp's
	// checked-in flag list shows the drift.
	if fl := f.Lookup(name); fl != nil && fl.Value.Set(value) == nil {
		fl.DefValue = value
	}
}

// Validate checks the whole configuration.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("-data-dir must not be empty")
	}
	// A query may wait up to 30 s for a slot, then run up to -querier.timeout.
	if c.Server.HTTPServerWriteTimeout > 0 && c.Server.HTTPServerWriteTimeout <= c.Querier.Timeout+30*time.Second {
		return fmt.Errorf("-server.http-write-timeout (%s) must exceed -querier.timeout (%s) by more than 30s", c.Server.HTTPServerWriteTimeout, c.Querier.Timeout)
	}
	if c.Auth.AuthMode == api.AuthNone && !c.Auth.NoneOnNetwork {
		addrs := []struct{ flag, addr string }{
			{"server.http-listen-address", c.Server.HTTPListenAddress},
			{"server.grpc-listen-address", c.Server.GRPCListenAddress},
		}
		for _, a := range c.Memberlist.TCPTransport.BindAddrs {
			addrs = append(addrs, struct{ flag, addr string }{"memberlist.bind-addr", a})
		}
		if len(c.Memberlist.TCPTransport.BindAddrs) == 0 { // dskit: every interface
			addrs = append(addrs, struct{ flag, addr string }{"memberlist.bind-addr", ""})
		}
		for _, a := range addrs {
			if !loopback(a.addr) {
				return fmt.Errorf("-auth.mode=none gives every caller full access to account %s, so it listens on loopback only: -%s=%q is not. Use -auth.mode=sigv4, or set -auth.none-allow-non-loopback on a trusted network", c.Auth.AnonymousAccount, a.flag, a.addr)
			}
		}
	}
	if c.QueryLogging.Sink == querylog.SinkFile && c.VendedLogs.Sink == querylog.SinkFile && c.QueryLogging.Dir != "" && c.QueryLogging.Dir == c.VendedLogs.Dir {
		return fmt.Errorf("-query-logging.dir and -vended-logs.dir name the same directory %q: both write <workspace>.log there", c.VendedLogs.Dir)
	}
	for _, v := range []interface{ Validate() error }{
		&c.Auth, &c.Audit, &c.Storage, &c.ControlPlane, &c.Distributor, &c.Ingester, &c.Querier, &c.FrontendWorker, &c.Frontend, &c.QueryLogging, &c.VendedLogs, &c.Compactor, &c.StoreGateway, &c.Ruler, &c.Alertmanager, &c.Limits,
	} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// LoadConfig builds the configuration from defaults, then the YAML file named
// by -config.file (with ${VAR} expanded when -config.expand-env is set), then
// the command-line flags, each overriding the one before.
func LoadConfig(args []string, usage io.Writer) (*Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("vigil", flag.ContinueOnError)
	fs.SetOutput(usage)
	var configFile string
	var expandEnv bool
	fs.StringVar(&configFile, "config.file", "", "YAML configuration file; command-line flags override it.")
	fs.BoolVar(&expandEnv, "config.expand-env", false, "Expand ${VAR} and $VAR references to environment variables in the configuration file.")
	cfg.RegisterFlags(fs)

	// The file must be read before the flags that override it are applied,
	// so find its name first.
	configFile, expandEnv = scanConfigFlags(args, configFile, expandEnv)
	if configFile != "" {
		body, err := os.ReadFile(configFile)
		if err != nil {
			return nil, fmt.Errorf("read config file: %w", err)
		}
		if expandEnv {
			body = []byte(os.ExpandEnv(string(body)))
		}
		dec := yaml.NewDecoder(strings.NewReader(string(body)))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			return nil, fmt.Errorf("parse config file %s: %w", configFile, err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if len(cfg.Memberlist.TCPTransport.BindAddrs) == 0 {
		cfg.Memberlist.TCPTransport.BindAddrs = flagext.StringSlice{defaultBindAddr}
	}
	return &cfg, nil
}

// defaultBindAddr is where the gossip port listens unless told otherwise.
const defaultBindAddr = "127.0.0.1"

// scanConfigFlags finds -config.file and -config.expand-env in args without
// parsing the rest.
func scanConfigFlags(args []string, file string, expand bool) (string, bool) {
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if len(args[i])-len(a) == 0 || len(args[i])-len(a) > 2 {
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		switch name {
		case "config.file":
			if hasValue {
				file = value
			} else if i+1 < len(args) {
				file = args[i+1]
				i++
			}
		case "config.expand-env":
			expand = !hasValue || value == "true" || value == "1"
		}
	}
	return file, expand
}

// loopback tells whether a listen address reaches this host only.
func loopback(addr string) bool {
	if addr == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"))
	return err == nil && a.IsLoopback()
}
