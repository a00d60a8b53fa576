package frontend

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/httpgrpc"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/pb/frontendpb"
	"github.com/vigil-metrics/vigil/pkg/promapi"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// testLimits are fixed limits.
type testLimits struct {
	maxQueriers, maxConcurrent int
	warn, fail                 int64
	maxLength, outOfOrder      time.Duration
	blocked                    string // an expression blocked_queries holds
}

func (l testLimits) MaxQueriersPerWorkspace(string) int { return l.maxQueriers }
func (l testLimits) MaxConcurrentQueries(string) int    { return l.maxConcurrent }
func (l testLimits) SamplesProcessedThresholds(string) (int64, int64) {
	return l.warn, l.fail
}
func (l testLimits) MaxQueryLength(string) time.Duration       { return l.maxLength }
func (l testLimits) OutOfOrderTimeWindow(string) time.Duration { return l.outOfOrder }
func (l testLimits) QueryBlocked(_, expr string) bool          { return expr == l.blocked }

// promAPI is Prometheus's own query API over q, as the querier serves it.
func promAPI(q storage.Queryable) http.Handler {
	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
		EnableAtModifier: true, EnableNegativeOffset: true, EnablePerStepStats: true,
		Parser: parser.NewParser(parser.Options{}),
	})
	api := promapi.New(promapi.Options{
		Engine: engine, Queryable: q.(storage.SampleAndChunkQueryable),
		LookbackDelta: 5 * time.Minute, Timeout: time.Minute,
		Registerer: prometheus.NewRegistry(), Logger: log.NewNopLogger(),
	})
	r := route.New()
	api.Register(r.WithPrefix("/api/v1"))
	return r
}

// backend answers a frontend's requests with Prometheus's API over one
// storage per workspace, counting the requests.
type backend struct {
	mu       sync.Mutex
	handlers map[string]http.Handler
	calls    atomic.Int64
	// fail, when set, answers a request instead (nil: serve it).
	fail func(n int64, req *httpgrpc.HTTPRequest) *httpgrpc.HTTPResponse
}

func (b *backend) do(ctx context.Context, ws string, req *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error) {
	n := b.calls.Add(1)
	if b.fail != nil {
		if resp := b.fail(n, req); resp != nil {
			return resp, nil
		}
	}
	b.mu.Lock()
	h := b.handlers[ws]
	b.mu.Unlock()
	r, err := httpgrpc.ToHTTPRequest(tenant.WithID(ctx, ws), req)
	if err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return &httpgrpc.HTTPResponse{Code: int32(rec.Code), Headers: httpgrpc.FromHeader(rec.Header()), Body: rec.Body.Bytes()}, nil
}

// storageWith returns a storage holding n series of metric, with a sample
// every interval over [from, to].
func storageWith(t *testing.T, metric string, n int, from, to time.Time, interval time.Duration) *teststorage.TestStorage {
	s := teststorage.New(t)
	app := s.Appender(context.Background())
	for i := 0; i < n; i++ {
		ls := labels.FromStrings("__name__", metric, "pod", fmt.Sprint(i))
		for ts := from; !ts.After(to); ts = ts.Add(interval) {
			_, err := app.Append(0, ls, ts.UnixMilli(), float64(ts.Unix()%1000)*float64(i+1))
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	return s
}

// newTestFrontend returns a frontend whose downstream is b.
func newTestFrontend(t *testing.T, cfg Config, l Limits, b *backend, now time.Time) (*Frontend, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	f, err := New(cfg, l, nil, time.Minute, reg, log.NewNopLogger())
	require.NoError(t, err)
	f.downstream = b.do
	f.now = func() time.Time { return now }
	return f, reg
}

func defaultConfig() Config {
	var cfg Config
	fs := flagSet()
	cfg.RegisterFlags(fs)
	return cfg
}

// get sends a query through h for ws and returns status and body.
func get(t *testing.T, h http.Handler, ws, path string, form url.Values) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set(frontendpb.WorkspaceHeader, "spoofed")
	r = r.WithContext(tenant.WithID(r.Context(), ws))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

// direct sends a query straight to Prometheus's API.
func direct(t *testing.T, h http.Handler, path string, form url.Values) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Code, rec.Body.String()
}

func flagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.PanicOnError) }
