package distributor

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/go-kit/log"
	"github.com/golang/snappy"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/inflight"
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

func newTestDistributor(t testing.TB, ings ...*fakeIngester) *Distributor {
	var cs []Pusher
	for _, ing := range ings {
		cs = append(cs, ing)
	}
	return newTestDistributorWith(t, cs...)
}

func newTestDistributorWith(t testing.TB, ings ...Pusher) *Distributor {
	r := &fakeRing{maxErrors: (len(ings) - 1) / 2}
	byAddr := map[string]Pusher{}
	for i, ing := range ings {
		addr := string(rune('a' + i))
		r.instances = append(r.instances, ring.InstanceDesc{Addr: addr, Id: addr, State: ring.ACTIVE})
		byAddr[addr] = ing
	}
	var cfg Config
	cfg.MaxRequestSizeBytes, cfg.MaxDecompressedSizeBytes, cfg.RemoteTimeout = 1<<20, 16<<20, 5e9
	d, err := New(cfg, r, func(inst ring.InstanceDesc) (Pusher, error) { return byAddr[inst.Addr], nil },
		defaultTestLimits, inflight.NewBudget(1<<30), prometheus.NewRegistry(), log.NewNopLogger())
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
	// As a remote ingester answers: the error travels in a gRPC status.
	outOfOrder := apierror.ToGRPC(apierror.New(apierror.BadData, apierror.IDSampleOutOfOrder, "out of order sample"))
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
			require.Equal(t, tc.wantCode, apierror.StatusOf(err), err.Error())
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
	require.Equal(t, http.StatusBadRequest, apierror.StatusOf(err))
	require.Contains(t, err.Error(), "without a metric name")
	require.Eventually(t, func() bool { ing.mu.Lock(); defer ing.mu.Unlock(); return ing.series == 2 }, 5e9, 1e6)
}

func TestPushWithoutTenant(t *testing.T) {
	d := newTestDistributor(t, &fakeIngester{})
	err := d.Push(context.Background(), testRequest(1), nil)
	require.Equal(t, http.StatusBadRequest, apierror.StatusOf(err))
}

// TestPushErrorKeepsIngesterWording: a remote ingester's error reaches the
// user with its status, ID and message; an unreachable quorum is a 503.
func TestPushErrorKeepsIngesterWording(t *testing.T) {
	refused := apierror.ToGRPC(apierror.New(apierror.BadData, apierror.IDSampleOutOfOrder, "1 sample(s) rejected: out of order"))
	d := newTestDistributor(t, &fakeIngester{err: refused}, &fakeIngester{err: refused}, &fakeIngester{})
	rec := pushHTTP(t, d, testRequest(1))
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Equal(t, "1 sample(s) rejected: out of order (err-vigil-sample-out-of-order)\n", rec.Body.String())

	down := status.Error(codes.Unavailable, "connection refused")
	d = newTestDistributor(t, &fakeIngester{err: down}, &fakeIngester{err: down}, &fakeIngester{})
	rec = pushHTTP(t, d, testRequest(1))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Contains(t, rec.Body.String(), "samples were not stored on a quorum of ingesters")
	require.Contains(t, rec.Body.String(), "(err-vigil-ingester-unavailable)")
}

// pushHTTP sends req through the distributor's HTTP handler.
func pushHTTP(t *testing.T, d *Distributor, req *prompb.WriteRequest) *httptest.ResponseRecorder {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw))).WithContext(tenantCtx())
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	rec := httptest.NewRecorder()
	d.PushHandler().ServeHTTP(rec, r)
	return rec
}

func tenantCtx() context.Context { return tenant.WithID(context.Background(), "ws-1") }

// TestPushCompactionKeepsSlicesDistinct guards the pooled request: after
// invalid series are dropped, no two series may share label storage, or the
// next request decoded into the same buffers would corrupt itself.
func TestPushCompactionKeepsSlicesDistinct(t *testing.T) {
	d := newTestDistributor(t, &fakeIngester{})
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("job", "no-name")},
		{Labels: lbls("__name__", "ok"), Samples: []prompb.Sample{{Timestamp: 1}}},
	}}
	_ = d.Push(tenantCtx(), req, nil)
	all := req.Timeseries[:cap(req.Timeseries)]
	require.NotSame(t, &all[0].Labels[0], &all[1].Labels[0])
}
