package distributor

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-metrics/vigil/pkg/ingester/client"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// fakeRing places every key on all of its instances, like RF = len(instances).
type fakeRing struct {
	instances []ring.InstanceDesc
	maxErrors int
}

func (r *fakeRing) Get(uint32, ring.Operation, []ring.InstanceDesc, []string, []string) (ring.ReplicationSet, error) {
	return ring.ReplicationSet{Instances: r.instances, MaxErrors: r.maxErrors}, nil
}
func (r *fakeRing) ReplicationFactor() int { return len(r.instances) }
func (r *fakeRing) InstancesCount() int    { return len(r.instances) }

// fakeIngester records pushes and fails with err when set.
type fakeIngester struct {
	mu     sync.Mutex
	err    error
	series int
}

func (f *fakeIngester) Push(_ context.Context, req *prompb.WriteRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.series += len(req.Timeseries)
	return nil
}

func (f *fakeIngester) Querier(context.Context, int64, int64) (storage.Querier, error) {
	return storage.NoopQuerier(), nil
}

func newTestDistributor(t testing.TB, ings ...*fakeIngester) *Distributor {
	r := &fakeRing{maxErrors: (len(ings) - 1) / 2}
	byAddr := map[string]*fakeIngester{}
	for i, ing := range ings {
		addr := string(rune('a' + i))
		r.instances = append(r.instances, ring.InstanceDesc{Addr: addr, Id: addr, State: ring.ACTIVE})
		byAddr[addr] = ing
	}
	var cfg Config
	cfg.MaxRequestSizeBytes, cfg.MaxDecompressedSizeBytes, cfg.RemoteTimeout = 1<<20, 16<<20, 5e9
	d, err := New(cfg, r, func(inst ring.InstanceDesc) (client.Ingester, error) { return byAddr[inst.Addr], nil },
		defaultTestLimits, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	return d
}

func testRequest(n int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for i := 0; i < n; i++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  lbls("__name__", "up", "i", string(rune('a'+i))),
			Samples: []prompb.Sample{{Timestamp: 1, Value: 1}},
		})
	}
	return req
}

func TestPushQuorum(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "connection refused")
	outOfOrder := httpgrpc.Error(http.StatusBadRequest, "out of order sample")
	for _, tc := range []struct {
		name     string
		errs     []error
		wantCode int // 0: success
	}{
		{"all replicas store", []error{nil, nil, nil}, 0},
		{"one replica down", []error{nil, unavailable, nil}, 0},
		{"two replicas down", []error{unavailable, nil, unavailable}, http.StatusServiceUnavailable},
		{"client error from replicas", []error{outOfOrder, outOfOrder, nil}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ings []*fakeIngester
			for _, err := range tc.errs {
				ings = append(ings, &fakeIngester{err: err})
			}
			d := newTestDistributor(t, ings...)
			cleaned := make(chan struct{})
			err := d.Push(tenant.WithID(context.Background(), "ws-1"), testRequest(3), func() { close(cleaned) })
			<-cleaned // cleanup runs once every replica is done with the request
			if tc.wantCode == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Equal(t, tc.wantCode, HTTPStatus(err), err.Error())
		})
	}
}

func TestPushStoresValidSeriesAndReportsInvalid(t *testing.T) {
	ing := &fakeIngester{}
	d := newTestDistributor(t, ing)
	req := testRequest(2)
	req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: lbls("job", "no-name"), Samples: []prompb.Sample{{Timestamp: 1}}})
	err := d.Push(tenant.WithID(context.Background(), "ws-1"), req, nil)
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, HTTPStatus(err))
	require.Contains(t, err.Error(), "without a metric name")
	require.Eventually(t, func() bool { ing.mu.Lock(); defer ing.mu.Unlock(); return ing.series == 2 }, 5e9, 1e6)
}

func TestPushWithoutTenant(t *testing.T) {
	d := newTestDistributor(t, &fakeIngester{})
	err := d.Push(context.Background(), testRequest(1), nil)
	require.Equal(t, http.StatusBadRequest, HTTPStatus(err))
}

func TestHTTPStatus(t *testing.T) {
	require.Equal(t, http.StatusServiceUnavailable, HTTPStatus(context.DeadlineExceeded))
	require.Equal(t, http.StatusServiceUnavailable, HTTPStatus(status.Error(codes.Unavailable, "x")))
	require.Equal(t, http.StatusTooManyRequests, HTTPStatus(httpgrpc.Error(http.StatusTooManyRequests, "slow down")))
	require.Equal(t, http.StatusServiceUnavailable, HTTPStatus(ring.ErrEmptyRing))
	require.Equal(t, http.StatusInternalServerError, HTTPStatus(errors.New("boom")))
}

func tenantCtx() context.Context { return tenant.WithID(context.Background(), "ws-1") }
