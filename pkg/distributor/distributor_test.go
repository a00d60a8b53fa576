package distributor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/remotewrite"
	"github.com/vigil-metrics/vigil/pkg/push"
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
		defaultTestLimits, nil, nil, prometheus.NewRegistry(), log.NewNopLogger())
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
			err := d.Push(tenant.WithID(context.Background(), "ws-1"), wrap(t, testRequest(3), func() { close(cleaned) }))
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

// TestPushQuorumVerdictOutlivesTheReplicas: when every replica has
// answered by the time the distributor reads their verdict (here the
// replicas run synchronously, so they always have), the verdict is the
// replicas' (a client error: 400), not the end of the pushes' context.
func TestPushQuorumVerdictOutlivesTheReplicas(t *testing.T) {
	outOfOrder := apierror.ToGRPC(apierror.New(apierror.BadData, apierror.IDSampleOutOfOrder, "out of order sample"))
	for i := 0; i < 20; i++ {
		d := newTestDistributor(t, &fakeIngester{err: outOfOrder}, &fakeIngester{err: outOfOrder}, &fakeIngester{})
		d.spawn = func(f func()) { f() }
		err := d.Push(tenant.WithID(context.Background(), "ws-1"), wrap(t, testRequest(3), func() {}))
		require.Equal(t, http.StatusBadRequest, apierror.StatusOf(err), "%v", err)
	}
}

func TestPushStoresValidSeriesAndReportsInvalid(t *testing.T) {
	ing := &fakeIngester{}
	d := newTestDistributor(t, ing)
	req := testRequest(2)
	req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: lbls("job", "no-name"), Samples: []prompb.Sample{{Timestamp: 1}}})
	err := d.Push(tenant.WithID(context.Background(), "ws-1"), wrap(t, req, nil))
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, apierror.StatusOf(err))
	require.Contains(t, err.Error(), "without a metric name")
	require.Eventually(t, func() bool { ing.mu.Lock(); defer ing.mu.Unlock(); return ing.series == 2 }, 5e9, 1e6)
}

func TestPushWithoutTenant(t *testing.T) {
	d := newTestDistributor(t, &fakeIngester{})
	err := d.Push(context.Background(), wrap(t, testRequest(1), nil))
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

// pushHTTP pushes req and answers as the front door does.
func pushHTTP(t testing.TB, d *Distributor, req *prompb.WriteRequest) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := d.Push(tenantCtx(), wrap(t, req, nil)); err != nil {
		apierror.WriteText(rec, err)
	} else {
		rec.WriteHeader(http.StatusNoContent)
	}
	return rec
}

// wrap makes req a push request as the remote-write decoder does, with the
// raw bytes of its series. release (which may be nil) is called when the
// distributor releases it.
func wrap(t testing.TB, req *prompb.WriteRequest, release func()) *push.Request {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	var (
		dec prompb.WriteRequest
		raw [][]byte
	)
	require.NoError(t, remotewrite.DecodeWithRaw(b, &dec, &raw, nil))
	return push.NewRequest(dec, raw, nil, release)
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
	r := wrap(t, req, nil)
	_ = d.Push(tenantCtx(), r)
	all := r.Timeseries[:cap(r.Timeseries)]
	require.NotSame(t, &all[0].Labels[0], &all[1].Labels[0])
}
