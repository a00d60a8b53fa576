// Package client reaches store-gateways: over gRPC, or directly when the
// ring picks the store-gateway running in this very process (monolithic
// mode), which implements StoreGateway itself.
package client

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/grpcclient"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigil-metrics/vigil/pkg/pb/storegatewaypb"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
)

// Config configures the gRPC clients to store-gateways.
type Config struct {
	GRPC              grpcclient.Config `yaml:"grpc_client_config"`
	HealthCheckPeriod time.Duration     `yaml:"health_check_period"`
}

// RegisterFlags registers the client flags under -store-gateway.client.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.GRPC.RegisterFlagsWithPrefix("store-gateway.client", f)
	f.DurationVar(&c.HealthCheckPeriod, "store-gateway.client.health-check-period", 15*time.Second, "How often pooled store-gateway connections are health-checked; unhealthy ones are dropped.")
}

// StoreGateway is what queriers need of one store-gateway. The workspace is
// taken from the context.
type StoreGateway interface {
	// Querier returns a Querier over the named blocks (ULIDs) of the
	// workspace, over the inclusive range [mint, maxt]. Its selects live
	// until it is closed (or their context ends).
	Querier(ctx context.Context, blockIDs []string, mint, maxt int64) (Querier, error)
}

// Querier is a storage.ChunkQuerier over blocks of one store-gateway: their
// own chunks, which may reach outside the range (none for a select whose
// hints' Func is "series"). A store-gateway may serve only some of the
// blocks asked for; the caller asks another replica for the others.
type Querier interface {
	storage.ChunkQuerier
	// Served returns the blocks asked for that the store-gateway answered
	// for in its last read: known once LabelNames or LabelValues returned,
	// or once the set of a Select was advanced, without an error.
	Served() []string
}

type grpcClient struct {
	storegatewaypb.StoreGatewayClient
	grpc_health_v1.HealthClient
	io.Closer
}

func (c *grpcClient) Querier(ctx context.Context, blockIDs []string, mint, maxt int64) (Querier, error) {
	return NewRemoteQuerier(ctx, c.StoreGatewayClient, blockIDs, mint, maxt)
}

// NewPool returns a pool of store-gateway clients for the instances of r.
func NewPool(cfg Config, r ring.ReadRing, reg prometheus.Registerer, logger log.Logger) *ringclient.Pool {
	clients := promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "vigil_storegateway_clients",
		Help: "Number of pooled store-gateway clients.",
	})
	factory := ringclient.PoolInstFunc(func(inst ring.InstanceDesc) (ringclient.PoolClient, error) {
		opts, err := cfg.GRPC.DialOption(nil, nil, nil)
		if err != nil {
			return nil, err
		}
		conn, err := grpc.NewClient(inst.Addr, opts...)
		if err != nil {
			return nil, fmt.Errorf("dial store-gateway %s: %w", inst.Addr, err)
		}
		return &grpcClient{
			StoreGatewayClient: storegatewaypb.NewStoreGatewayClient(conn),
			HealthClient:       grpc_health_v1.NewHealthClient(conn),
			Closer:             conn,
		}, nil
	})
	return ringmember.NewClientPool("store-gateway", cfg.HealthCheckPeriod, r, factory, clients, logger)
}

// Get returns the client of a ring instance from pool.
func Get(pool *ringclient.Pool, inst ring.InstanceDesc) (StoreGateway, error) {
	return ringmember.PooledClient[StoreGateway](pool, inst, "store-gateway")
}
