package querier

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/logging"
	"github.com/vigil-metrics/vigil/pkg/promapi"
	"github.com/vigil-metrics/vigil/pkg/slots"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// servedPaths are the Prometheus API endpoints Vigil serves so far.
var servedPaths = []string{
	"/api/v1/query",
	"/api/v1/query_range",
	"/api/v1/labels",
	"/api/v1/series",
	"/api/v1/format_query",
	"/api/v1/parse_query",
	"/api/v1/metadata",
	"/api/v1/query_exemplars",
	"/api/v1/status/buildinfo",
}

// Paths answered by Vigil's own handlers rather than Prometheus's (which
// serves them from its scrape targets and build).
const (
	metadataPath  = "/api/v1/metadata"
	buildInfoPath = "/api/v1/status/buildinfo"
)

// slotWait bounds the wait for a query slot.
const slotWait = 30 * time.Second

var labelValuesPath = regexp.MustCompile(`^/api/v1/label/[^/]+/values$`)

// NewEngine returns the PromQL engine configured as Prometheus's defaults,
// with the limits of cfg.
func NewEngine(cfg Config, reg prometheus.Registerer, logger log.Logger) *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		Logger:               logging.Slog(logger),
		Reg:                  reg,
		MaxSamples:           cfg.MaxSamples,
		Timeout:              cfg.Timeout,
		LookbackDelta:        cfg.LookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		EnablePerStepStats:   true,
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return cfg.DefaultEvalInterval.Milliseconds()
		},
		Parser: parser.NewParser(parser.Options{}),
	})
}

// NewHandler returns an http.Handler serving the Prometheus query API (paths
// under /api/v1/) over queryable, with Prometheus's own request parsing and
// JSON encoding: queries, labels, series, exemplars, metric metadata and
// build information. The workspace comes from each request's context.
// Every query evaluated is told to queryLog (nil: none).
func NewHandler(cfg Config, engine promql.QueryEngine, queryable *Queryable, limits GuardLimits, queryLog QueryLogger, reg prometheus.Registerer, logger log.Logger) http.Handler {
	engine = &guardedEngine{QueryEngine: engine, limits: limits, log: queryLog}
	api := newPrometheusAPI(cfg, engine, queryable, queryable, nil, reg, logger)
	router := route.New()
	api.Register(router.WithPrefix("/api/v1"))
	// At most MaxConcurrent requests evaluate at once; the rest wait for a
	// slot, at most slotWait, so that waiting plus evaluating stays within
	// the HTTP server's write timeout.
	running := slots.NewLimiter(cfg.MaxConcurrent)
	g := &guard{limits: limits}
	metadata, buildInfo := metadataHandler(queryable), buildInfoHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimSuffix(r.URL.Path, "/")
		if !served(path) {
			apierror.WritePrometheus(w, apierror.New(apierror.NotFound, "", "unknown or not yet served API endpoint %s", r.URL.Path))
			return
		}
		// Prometheus's router answers other methods 405.
		get := r.Method == http.MethodGet || r.Method == http.MethodHead
		if path == buildInfoPath && get {
			buildInfo(w, r) // reads nothing: no query slot
			return
		}
		if err := g.check(w, r); err != nil {
			apierror.WritePrometheus(w, err)
			return
		}
		ws, _ := tenant.ID(r.Context())
		warn, fail := limits.SamplesProcessedThresholds(ws)
		qsp, err := requestQSPThresholds(r.Form, warn, fail)
		if err != nil {
			apierror.WritePrometheus(w, err)
			return
		}
		r = r.WithContext(withUserAgent(withQSPThresholds(r.Context(), qsp), r.UserAgent()))
		wait := time.NewTimer(slotWait)
		defer wait.Stop()
		limit := limits.MaxConcurrentQueries(ws)
		release, err := running.Acquire(r.Context(), ws, limit, wait.C)
		switch {
		case errors.Is(err, slots.ErrNoneFree):
			apierror.WritePrometheus(w, apierror.New(apierror.TooManyRequests, apierror.IDWorkspaceQueryConcurrency,
				"too many concurrent queries of this workspace: no slot of its %d free within %s (-querier.max-concurrent-queries-per-workspace)", limit, slotWait))
			return
		case errors.Is(err, slots.ErrAllTaken):
			apierror.WritePrometheus(w, apierror.New(apierror.TooManyRequests, "", "too many concurrent queries: no query slot free within %s (-querier.max-concurrent)", slotWait))
			return
		case err != nil:
			apierror.WritePrometheus(w, apierror.New(apierror.Unavailable, "", "request cancelled while waiting for a query slot (-querier.max-concurrent, -querier.max-concurrent-queries-per-workspace)"))
			return
		}
		defer release()
		if path == metadataPath && get {
			metadata(w, r)
			return
		}
		router.ServeHTTP(w, r)
	})
}

// newPrometheusAPI returns Prometheus's own query API over q and eq, with
// the scrape targets of tr (nil: none).
func newPrometheusAPI(cfg Config, engine promql.QueryEngine, q storage.SampleAndChunkQueryable, eq storage.ExemplarQueryable, tr func(context.Context) v1.TargetRetriever, reg prometheus.Registerer, logger log.Logger) *v1.API {
	var override v1.OverrideErrorCode = statusOfCause
	return promapi.New(promapi.Options{
		Engine: engine, Queryable: q, Exemplars: eq, Targets: tr,
		OverrideErrorCode: override, LookbackDelta: cfg.LookbackDelta, Timeout: cfg.Timeout,
		Registerer: prometheus.WrapRegistererWithPrefix("vigil_querier_", reg), Logger: logger,
	})
}

// statusOfCause answers a query that ran out of time 422, as AMP does
// (Prometheus: 503), and gives a storage error that carries a Vigil cause the status
// the one mapping from cause to HTTP status gives it (a store that cannot
// serve a block: 503, where Prometheus answers 500 for any storage error).
// Errors of the query itself keep Prometheus's status. Prometheus's API
// names its error kinds with an unexported type: the type parameter takes
// it.
func statusOfCause[N comparable](kind N, err error) (int, bool) {
	if any(kind) == any(v1.ErrorTimeout) {
		return http.StatusUnprocessableEntity, true
	}
	if any(kind) != any(v1.ErrorInternal) {
		return 0, false
	}
	var es promql.ErrStorage // it has no Unwrap
	if errors.As(err, &es) {
		err = es.Err
	}
	var e *apierror.Error
	if !errors.As(err, &e) || e.ID == "" {
		return 0, false
	}
	return apierror.HTTPStatus(e.Cause), true
}

func served(path string) bool {
	for _, p := range servedPaths {
		if path == p {
			return true
		}
	}
	return labelValuesPath.MatchString(path)
}
