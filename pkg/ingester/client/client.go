// Package client reaches ingesters: over gRPC, or directly when the ring
// picks the ingester running in this very process (monolithic mode), so that
// no request is marshalled on its way to the local TSDB.
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
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Ingester is what distributors and queriers need of one ingester. The
// workspace is taken from the context.
type Ingester interface {
	// Push stores a batch of samples.
	Push(ctx context.Context, req *prompb.WriteRequest) error
	// Querier returns a storage.ChunkQuerier over the inclusive range
	// [mint, maxt]: the TSDB's chunks, which may reach outside the range. A
	// select whose hints' Func is "series" gets series without chunks. Its
	// selects live until it is closed (or their context ends).
	Querier(ctx context.Context, mint, maxt int64) (storage.ChunkQuerier, error)
	// MetricsMetadata returns the metric metadata the ingester holds,
	// sorted by metric name, then type, help and unit, cut as req says.
	MetricsMetadata(ctx context.Context, req *ingesterpb.MetricsMetadataRequest) (*ingesterpb.MetricsMetadataResponse, error)
	// QueryExemplars returns the exemplars the ingester holds of the
	// series matching req.
	QueryExemplars(ctx context.Context, req *ingesterpb.ExemplarQueryRequest) (*ingesterpb.ExemplarQueryResponse, error)
}

// PoolClient is an Ingester managed by a dskit client pool.
type PoolClient interface {
	Ingester
	ringclient.PoolClient
}

// Config configures the gRPC clients to ingesters.
type Config struct {
	GRPC              grpcclient.Config `yaml:"grpc_client_config"`
	HealthCheckPeriod time.Duration     `yaml:"health_check_period"`
}

// RegisterFlags registers the client flags under -ingester.client.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.GRPC.RegisterFlagsWithPrefix("ingester.client", f)
	f.DurationVar(&c.HealthCheckPeriod, "ingester.client.health-check-period", 15*time.Second, "How often pooled ingester connections are health-checked; unhealthy ones are dropped.")
}

// NewPool returns a pool of ingester clients for the instances of r. local
// returns the in-process ingester for an instance this process runs, which is
// then called directly, and nil for every other instance.
func NewPool(cfg Config, r ring.ReadRing, local func(ring.InstanceDesc) Ingester, reg prometheus.Registerer, logger log.Logger) *ringclient.Pool {
	clients := promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "vigil_ingester_clients",
		Help: "Number of pooled ingester clients.",
	})
	factory := ringclient.PoolInstFunc(func(inst ring.InstanceDesc) (ringclient.PoolClient, error) {
		if l := local(inst); l != nil {
			return localClient{l}, nil
		}
		return dial(cfg, inst.Addr)
	})
	return ringmember.NewClientPool("ingester", cfg.HealthCheckPeriod, r, factory, clients, logger)
}

// Get returns the client of a ring instance from pool.
func Get(pool *ringclient.Pool, inst ring.InstanceDesc) (Ingester, error) {
	return ringmember.PooledClient[Ingester](pool, inst, "ingester")
}

type grpcClient struct {
	ingesterpb.IngesterClient
	grpc_health_v1.HealthClient
	io.Closer
	conn invoker
}

func dial(cfg Config, addr string) (*grpcClient, error) {
	opts, err := cfg.GRPC.DialOption(nil, nil, nil)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial ingester %s: %w", addr, err)
	}
	return &grpcClient{
		IngesterClient: ingesterpb.NewIngesterClient(conn),
		HealthClient:   grpc_health_v1.NewHealthClient(conn),
		Closer:         conn,
		conn:           conn,
	}, nil
}

func (c *grpcClient) Push(ctx context.Context, req *prompb.WriteRequest) error {
	ctx, err := tenant.OutgoingContext(ctx)
	if err != nil {
		return err
	}
	_, err = c.IngesterClient.Push(ctx, req)
	return err
}

func (c *grpcClient) Querier(ctx context.Context, mint, maxt int64) (storage.ChunkQuerier, error) {
	ctx, err := tenant.OutgoingContext(ctx)
	if err != nil {
		return nil, err
	}
	return &remoteQuerier{client: c.IngesterClient, ctx: ctx, mint: mint, maxt: maxt}, nil
}

func (c *grpcClient) MetricsMetadata(ctx context.Context, req *ingesterpb.MetricsMetadataRequest) (*ingesterpb.MetricsMetadataResponse, error) {
	ctx, err := tenant.OutgoingContext(ctx)
	if err != nil {
		return nil, err
	}
	return c.IngesterClient.MetricsMetadata(ctx, req)
}

func (c *grpcClient) QueryExemplars(ctx context.Context, req *ingesterpb.ExemplarQueryRequest) (*ingesterpb.ExemplarQueryResponse, error) {
	ctx, err := tenant.OutgoingContext(ctx)
	if err != nil {
		return nil, err
	}
	return c.IngesterClient.QueryExemplars(ctx, req)
}

// localClient serves the ingester of this process without gRPC.
type localClient struct {
	Ingester
}

func (localClient) Close() error { return nil }

func (localClient) Check(context.Context, *grpc_health_v1.HealthCheckRequest, ...grpc.CallOption) (*grpc_health_v1.HealthCheckResponse, error) {
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

func (localClient) List(context.Context, *grpc_health_v1.HealthListRequest, ...grpc.CallOption) (*grpc_health_v1.HealthListResponse, error) {
	return &grpc_health_v1.HealthListResponse{}, nil
}

func (localClient) Watch(context.Context, *grpc_health_v1.HealthCheckRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[grpc_health_v1.HealthCheckResponse], error) {
	return nil, fmt.Errorf("watch is not served by the in-process ingester client")
}
