package frontend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/frontendpb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Limits are the per-workspace limits the query-frontend reads.
type Limits interface {
	QueueLimits
	// SamplesProcessedThresholds are the workspace's QSP thresholds: a
	// query they apply to is sent whole, so that they count all of it.
	SamplesProcessedThresholds(workspace string) (warn, fail int64)
	// MaxQueryLength is the longest range query: a longer one is sent
	// whole, for the querier to refuse.
	MaxQueryLength(workspace string) time.Duration
	// OutOfOrderTimeWindow is how late the workspace's samples may arrive:
	// a leg ending within it of now is not cached.
	OutOfOrderTimeWindow(workspace string) time.Duration
	// QueryBlocked tells whether the workspace's blocked_queries hold expr:
	// a cached answer is not served for it.
	QueryBlocked(workspace, expr string) bool
}

// QueryLogged tells whether a workspace's queries are logged (its query
// logging configuration): its range queries are sent whole, so that the
// query log holds each query once, with all its samples.
type QueryLogged func(ctx context.Context, workspace string) bool

// maxRequestBytes bounds a read request's body. AMP quota: request size
// (ingest or query) 1 MB.
const maxRequestBytes = 1 << 20

const rangePath = "/api/v1/query_range"

// Frontend is the query-frontend service.
type Frontend struct {
	services.Service
	cfg     Config
	limits  Limits
	timeout time.Duration
	queue   *queue
	cache   resultsCache // nil: none
	metrics *metrics
	logger  log.Logger
	now     func() time.Time
	// queryLogged (nil: no workspace's queries are logged).
	queryLogged QueryLogged
	// queryIDs numbers the client requests, which the legs of a split
	// query share in the queue.
	queryIDs atomic.Uint64
	// downstream sends one request to a querier (the queue; tests replace it).
	downstream func(ctx context.Context, workspace string, req *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error)
}

// New returns a query-frontend. timeout bounds each request from its
// arrival, queueing included (the querier's timeout plus its slot wait).
// queryLogged (which may be nil) tells which workspaces' queries are logged.
func New(cfg Config, limits Limits, queryLogged QueryLogged, timeout time.Duration, reg prometheus.Registerer, logger log.Logger) (*Frontend, error) {
	m := newMetrics(reg)
	c, err := newResultsCache(cfg.ResultsCache, reg, logger)
	if err != nil {
		return nil, err
	}
	if cfg.SplitInterval == 0 {
		c = nil
	}
	f := &Frontend{
		cfg: cfg, limits: limits, queryLogged: queryLogged, timeout: timeout, cache: c, metrics: m, logger: logger, now: time.Now,
		queue: newQueue(cfg.MaxOutstandingPerWorkspace, limits, m),
	}
	f.downstream = f.enqueue
	f.Service = services.NewIdleService(nil, func(error) error {
		f.queue.stop()
		if f.cache != nil {
			f.cache.Stop()
		}
		return nil
	})
	return f, nil
}

// Handler serves the public read routes (paths under /api/v1/) for the
// workspace in the request context.
func (f *Frontend) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := tenant.ID(r.Context())
		if err != nil {
			apierror.WritePrometheus(w, apierror.New(apierror.Internal, apierror.IDMissingTenant, "no workspace on the request"))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				apierror.WritePrometheus(w, apierror.New(apierror.TooLarge, apierror.IDRequestTooLarge, "request body too large: over the limit of %d bytes (AMP quota: request size 1 MB)", maxRequestBytes))
				return
			}
			apierror.WritePrometheus(w, apierror.New(apierror.BadData, "", "read request body: %v", err))
			return
		}
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), queryIDKey{}, f.queryIDs.Add(1)), f.timeout)
		defer cancel()
		if strings.TrimSuffix(r.URL.Path, "/") == rangePath && f.cfg.SplitInterval > 0 {
			if q, ok := f.splittable(r, body, ws); ok {
				f.metrics.queries.WithLabelValues("query_range").Inc()
				q.userAgent = r.UserAgent()
				f.serveRange(ctx, w, ws, q)
				return
			}
			f.metrics.queries.WithLabelValues("query_range_unsplit").Inc()
		} else {
			f.metrics.queries.WithLabelValues("other").Inc()
		}
		resp, err := f.do(ctx, ws, forwarded(r, body, ws))
		writeResponse(w, resp, err)
	})
}

// forwarded is the request r as sent to a querier, its workspace in a
// header only the frontend sets.
func forwarded(r *http.Request, body []byte, ws string) *httpgrpc.HTTPRequest {
	h := r.Header.Clone()
	h.Set(frontendpb.WorkspaceHeader, ws)
	return &httpgrpc.HTTPRequest{Method: r.Method, Url: r.URL.RequestURI(), Headers: httpgrpc.FromHeader(h), Body: body}
}

// splittable parses a range query that may be split: one without QSP
// thresholds, whose parameters and expression parse.
func (f *Frontend) splittable(r *http.Request, body []byte, ws string) (rangeQuery, bool) {
	pr := r.Clone(r.Context())
	pr.Body = io.NopCloser(bytes.NewReader(body))
	pr.Form, pr.PostForm = nil, nil
	if pr.ParseForm() != nil {
		return rangeQuery{}, false
	}
	if warn, fail := f.limits.SamplesProcessedThresholds(ws); warn > 0 || fail > 0 {
		return rangeQuery{}, false
	}
	if pr.Form.Has("max_samples_processed_warning_threshold") || pr.Form.Has("max_samples_processed_error_threshold") {
		return rangeQuery{}, false
	}
	// Prometheus cuts each answer to its first limit series: legs would
	// each keep their own.
	if pr.Form.Get("limit") != "" {
		return rangeQuery{}, false
	}
	if f.queryLogged != nil && f.queryLogged(r.Context(), ws) {
		return rangeQuery{}, false
	}
	q, ok := parseRangeQuery(pr.Form)
	if max := f.limits.MaxQueryLength(ws); ok && max > 0 && time.Duration(q.end-q.start)*time.Millisecond > max {
		return rangeQuery{}, false
	}
	return q, ok
}

// do sends req to a querier, and again (up to -query-frontend.max-retries
// times) when it is answered 5xx or lost on the way.
func (f *Frontend) do(ctx context.Context, ws string, req *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error) {
	for attempt := 0; ; attempt++ {
		resp, err := f.downstream(ctx, ws, req)
		var apiErr *apierror.Error
		retry := ctx.Err() == nil && ((err != nil && !errors.As(err, &apiErr)) || (err == nil && resp.Code/100 == 5))
		if !retry || attempt >= f.cfg.MaxRetries {
			return resp, err
		}
		f.metrics.retries.Inc()
		level.Debug(f.logger).Log("msg", "retrying query", "workspace", ws, "attempt", attempt+1, "err", err)
	}
}

type queryIDKey struct{}

// enqueue queues req for a querier and waits for its answer.
func (f *Frontend) enqueue(ctx context.Context, ws string, req *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error) {
	id, _ := ctx.Value(queryIDKey{}).(uint64)
	r := &request{ctx: ctx, workspace: ws, query: id, req: req, enqueued: time.Now(), done: make(chan result, 1)}
	if err := f.queue.enqueue(r); err != nil {
		return nil, err
	}
	select {
	case res := <-r.done:
		return res.resp, res.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, apierror.New(apierror.Unavailable, "", "the query did not complete within the query-frontend's timeout (-querier.timeout plus the query slot wait)")
		}
		return nil, apierror.New(apierror.Unavailable, "", "request cancelled")
	}
}

// errCallerGone ends a querier's stream whose request's caller went away:
// the querier's evaluation is cancelled with it.
var errCallerGone = errors.New("the request's caller went away")

// Process serves one querier stream: it hands the querier the requests the
// queue gives it, one at a time, and their answers back to their callers.
func (f *Frontend) Process(stream frontendpb.ProcessServer) error {
	id := querierID(stream.Context())
	f.queue.connect(id)
	defer f.queue.disconnect(id)
	for {
		r, finished, err := f.queue.next(stream.Context(), id)
		if err != nil {
			return err
		}
		err = f.serveOne(stream, r)
		finished()
		if err != nil {
			if !errors.Is(err, errCallerGone) {
				level.Warn(f.logger).Log("msg", "querier stream failed with a request in flight", "querier", id, "workspace", r.workspace, "err", err)
			}
			return err
		}
	}
}

func (f *Frontend) serveOne(stream frontendpb.ProcessServer, r *request) error {
	if err := stream.Send(r.req); err != nil {
		r.done <- result{err: err}
		return err
	}
	recv := make(chan result, 1)
	go func() {
		resp, err := stream.Recv()
		recv <- result{resp: resp, err: err}
	}()
	select {
	case res := <-recv:
		r.done <- res
		return res.err
	case <-r.ctx.Done():
		r.done <- result{err: r.ctx.Err()}
		return errCallerGone
	}
}

// querierID names the querier of a stream: the ID it sent, or its address.
func querierID(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(frontendpb.QuerierIDKey); len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	if p, ok := peer.FromContext(ctx); ok {
		return p.Addr.String()
	}
	return "unknown"
}

// writeResponse writes a querier's answer, or the error that stands for it.
func writeResponse(w http.ResponseWriter, resp *httpgrpc.HTTPResponse, err error) {
	if err != nil {
		var apiErr *apierror.Error
		if !errors.As(err, &apiErr) {
			err = apierror.New(apierror.Unavailable, "", "no querier answered: %v", err)
		}
		apierror.WritePrometheus(w, err)
		return
	}
	for _, h := range resp.Headers {
		for _, v := range h.Values {
			w.Header().Add(h.Key, v)
		}
	}
	w.WriteHeader(int(resp.Code))
	_, _ = w.Write(resp.Body)
}
