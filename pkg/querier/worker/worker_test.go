package worker

import (
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/services"

	qf "github.com/vigil-metrics/vigil/pkg/frontend"
	"github.com/vigil-metrics/vigil/pkg/pb/frontendpb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

type limits struct{}

func (limits) MaxQueriersPerWorkspace(string) int               { return 0 }
func (limits) MaxConcurrentQueries(string) int                  { return 0 }
func (limits) SamplesProcessedThresholds(string) (int64, int64) { return 0, 0 }
func (limits) MaxQueryLength(string) time.Duration              { return 0 }
func (limits) OutOfOrderTimeWindow(string) time.Duration        { return 0 }
func (limits) QueryBlocked(string, string) bool                 { return false }

// startFrontend serves a query-frontend's gRPC service on loopback.
func startFrontend(t *testing.T) (*qf.Frontend, string) {
	var cfg qf.Config
	fs := flagSet()
	cfg.RegisterFlags(fs)
	f, err := qf.New(cfg, limits{}, nil, time.Minute, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), f))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	frontendpb.Register(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		_ = services.StopAndAwaitTerminated(context.Background(), f)
	})
	return f, lis.Addr().String()
}

func startWorker(t *testing.T, addr string, h http.Handler) {
	var cfg Config
	cfg.RegisterFlags(flagSet())
	cfg.FrontendAddress, cfg.QuerierID = addr, "querier-1"
	w, err := New(cfg, 2, h, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), w))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), w) })
}

func query(ctx context.Context, f *qf.Frontend, ws, path string) (int, string) {
	r := httptest.NewRequest(http.MethodGet, path, nil).WithContext(tenant.WithID(ctx, ws))
	rec := httptest.NewRecorder()
	f.Handler().ServeHTTP(rec, r)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

// TestWorkerAnswersThroughTheFrontend: a request to the frontend reaches
// the querier's handler over the stream, with its workspace in the
// context, and the handler's answer comes back.
func TestWorkerAnswersThroughTheFrontend(t *testing.T) {
	f, addr := startFrontend(t)
	startWorker(t, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := tenant.ID(r.Context())
		require.NoError(t, err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte(ws + " " + r.URL.Path + " " + r.URL.Query().Get("query")))
	}))
	code, body := query(context.Background(), f, "ws-1", "/api/v1/query?query=up")
	require.Equal(t, http.StatusTeapot, code)
	require.Equal(t, "ws-1 /api/v1/query up", body)
}

// TestCallerGoneCancelsTheQuery: when the caller of a running query goes
// away, the querier's evaluation is cancelled, and the querier goes on
// serving.
func TestCallerGoneCancelsTheQuery(t *testing.T) {
	f, addr := startFrontend(t)
	cancelled := make(chan struct{})
	startWorker(t, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "slow") {
			<-r.Context().Done()
			close(cancelled)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	code, _ := query(ctx, f, "ws-1", "/api/v1/query?query=slow")
	require.Equal(t, http.StatusServiceUnavailable, code)
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the querier's evaluation was not cancelled")
	}
	require.Eventually(t, func() bool {
		code, body := query(context.Background(), f, "ws-1", "/api/v1/query?query=fast")
		return code == http.StatusOK && body == "ok"
	}, 10*time.Second, 50*time.Millisecond)
}

func flagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.PanicOnError) }

// TestAnswerTooLargeIsRefused: an answer larger than a stream message is
// replaced by a 422 with its ID: sent, it would end the stream and the
// frontend would run the query again.
func TestAnswerTooLargeIsRefused(t *testing.T) {
	var cfg Config
	cfg.RegisterFlags(flagSet())
	cfg.FrontendAddress, cfg.QuerierID, cfg.MaxMessageSize = "127.0.0.1:1", "querier-1", 256<<10
	size := 0
	w, err := New(cfg, 1, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", size)))
	}), prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	req := &httpgrpc.HTTPRequest{Method: http.MethodGet, Url: "/api/v1/query?query=up",
		Headers: []*httpgrpc.Header{{Key: frontendpb.WorkspaceHeader, Values: []string{"ws-1"}}}}
	size = 100 << 10
	resp := w.serve(context.Background(), req)
	require.Equal(t, int32(http.StatusOK), resp.Code)
	require.Len(t, resp.Body, size)
	size = 300 << 10
	resp = w.serve(context.Background(), req)
	require.Equal(t, int32(http.StatusUnprocessableEntity), resp.Code)
	require.Contains(t, string(resp.Body), "err-vigil-answer-too-large")
}
