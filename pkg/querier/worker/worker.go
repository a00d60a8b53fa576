// Package worker is the querier's side of the query-frontend: it opens
// streams to every query-frontend (frontendpb), takes the requests they
// send, runs each against the querier's own HTTP handler with the
// workspace in the context, and sends the answer back.
package worker

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/backoff"
	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/frontendpb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Config configures the worker.
type Config struct {
	// FrontendAddress is host:port of the query-frontends; a host name is
	// resolved every DNSLookupPeriod, and every address it resolves to is
	// a frontend.
	FrontendAddress string        `yaml:"frontend_address"`
	DNSLookupPeriod time.Duration `yaml:"dns_lookup_period"`
	QuerierID       string        `yaml:"id"`
	// MaxMessageSize bounds a request or answer on the stream.
	MaxMessageSize int `yaml:"max_message_size_bytes"`
}

// RegisterFlags registers the worker flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.FrontendAddress, "querier.frontend-address", "", "host:port of the query-frontend(s) this querier pulls queries from; a name resolving to several addresses reaches each. Empty in -target=all: the process's own frontend. Empty for -target=querier: no frontend, the querier serves the public read routes itself.")
	f.DurationVar(&c.DNSLookupPeriod, "querier.dns-lookup-period", 10*time.Second, "How often -querier.frontend-address is resolved again.")
	f.StringVar(&c.QuerierID, "querier.id", "", "Name this querier gives the query-frontends, which shard workspaces over queriers by it. Default: the host name.")
	f.IntVar(&c.MaxMessageSize, "querier.frontend-client.max-message-size-bytes", 100<<20, "Largest query or answer sent over a query-frontend stream.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.DNSLookupPeriod <= 0 || c.MaxMessageSize <= 0 {
		return fmt.Errorf("-querier.dns-lookup-period and -querier.frontend-client.max-message-size-bytes must be positive")
	}
	return nil
}

// Worker pulls queries from the query-frontends.
type Worker struct {
	services.Service
	cfg         Config
	parallelism int
	handler     http.Handler
	logger      log.Logger
	lookup      func(ctx context.Context, host string) ([]string, error)

	mu        sync.Mutex
	frontends map[string]*frontend // by address

	requests *prometheus.CounterVec
}

// New returns a worker that runs at most parallelism queries at once
// (the querier's -querier.max-concurrent), spread over the frontends, each
// with handler.
func New(cfg Config, parallelism int, handler http.Handler, reg prometheus.Registerer, logger log.Logger) (*Worker, error) {
	if cfg.QuerierID == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("querier id: %w", err)
		}
		cfg.QuerierID = host
	}
	w := &Worker{
		cfg: cfg, parallelism: parallelism, handler: handler, logger: logger,
		lookup: net.DefaultResolver.LookupHost, frontends: map[string]*frontend{},
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_querier_frontend_requests_total",
			Help: "Requests the querier took from query-frontends, by answer status code.",
		}, []string{"status_code"}),
	}
	w.Service = services.NewBasicService(nil, w.running, w.stopping)
	return w, nil
}

func (w *Worker) running(ctx context.Context) error {
	t := time.NewTicker(w.cfg.DNSLookupPeriod)
	defer t.Stop()
	for {
		w.resolve(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// resolve finds the frontends' addresses and spreads the parallelism over
// them.
func (w *Worker) resolve(ctx context.Context) {
	host, port, err := net.SplitHostPort(w.cfg.FrontendAddress)
	if err != nil {
		level.Error(w.logger).Log("msg", "invalid -querier.frontend-address", "address", w.cfg.FrontendAddress, "err", err)
		return
	}
	var addrs []string
	if net.ParseIP(host) != nil {
		addrs = []string{w.cfg.FrontendAddress}
	} else {
		ips, err := w.lookup(ctx, host)
		if err != nil {
			level.Warn(w.logger).Log("msg", "cannot resolve the query-frontend address; keeping the known frontends", "address", w.cfg.FrontendAddress, "err", err)
			return
		}
		for _, ip := range ips {
			addrs = append(addrs, net.JoinHostPort(ip, port))
		}
	}
	slices.Sort(addrs)
	w.mu.Lock()
	defer w.mu.Unlock()
	for addr, f := range w.frontends {
		if !slices.Contains(addrs, addr) {
			f.stop()
			delete(w.frontends, addr)
		}
	}
	for i, addr := range addrs {
		// Each frontend gets an equal share, at least one stream.
		n := max(1, w.parallelism/len(addrs))
		if i < w.parallelism%len(addrs) {
			n++
		}
		f := w.frontends[addr]
		if f == nil {
			f, err = w.newFrontend(addr)
			if err != nil {
				level.Error(w.logger).Log("msg", "cannot dial the query-frontend", "address", addr, "err", err)
				continue
			}
			w.frontends[addr] = f
		}
		f.setStreams(n)
	}
}

func (w *Worker) stopping(error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for addr, f := range w.frontends {
		f.stop()
		delete(w.frontends, addr)
	}
	return nil
}

// frontend is the streams to one query-frontend.
type frontend struct {
	w       *Worker
	addr    string
	conn    *grpc.ClientConn
	cancels []context.CancelFunc
	wg      sync.WaitGroup
}

func (w *Worker) newFrontend(addr string) (*frontend, error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(w.cfg.MaxMessageSize), grpc.MaxCallSendMsgSize(w.cfg.MaxMessageSize)))
	if err != nil {
		return nil, err
	}
	return &frontend{w: w, addr: addr, conn: conn}, nil
}

// setStreams runs n streams, starting or ending some. A stream ended while
// it runs a query loses it: the frontend retries it elsewhere.
func (f *frontend) setStreams(n int) {
	for len(f.cancels) < n {
		ctx, cancel := context.WithCancel(context.Background())
		f.cancels = append(f.cancels, cancel)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.loop(ctx)
		}()
	}
	for len(f.cancels) > n {
		f.cancels[len(f.cancels)-1]()
		f.cancels = f.cancels[:len(f.cancels)-1]
	}
}

func (f *frontend) stop() {
	f.setStreams(0)
	f.wg.Wait()
	_ = f.conn.Close()
}

// loop keeps one stream open, reconnecting with backoff, until ctx ends.
func (f *frontend) loop(ctx context.Context) {
	b := backoff.New(ctx, backoff.Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second})
	for b.Ongoing() {
		served, err := f.process(ctx)
		if ctx.Err() != nil {
			return
		}
		if served {
			b.Reset()
		}
		level.Debug(f.w.logger).Log("msg", "query-frontend stream ended; reconnecting", "address", f.addr, "err", err)
		b.Wait()
	}
}

// process serves one stream until it ends; served tells whether it
// answered any request.
func (f *frontend) process(ctx context.Context) (served bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, frontendpb.QuerierIDKey, f.w.cfg.QuerierID)
	stream, err := frontendpb.Process(ctx, f.conn)
	if err != nil {
		return false, err
	}
	// One reader: the frontend sends the next request only once answered,
	// so a read while a request runs returns only when the stream ends
	// (the frontend gave up on the request, its caller went away, or it
	// stops), which cancels the evaluation.
	reqs := make(chan *httpgrpc.HTTPRequest)
	ended := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				ended <- err
				cancel()
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case err := <-ended:
			return served, err
		case <-ctx.Done():
			return served, ctx.Err()
		case req := <-reqs:
			resp := f.w.serve(ctx, req)
			if err := stream.Send(resp); err != nil {
				return served, err
			}
			served = true
		}
	}
}

// serve runs one request against the querier's handler.
func (w *Worker) serve(ctx context.Context, req *httpgrpc.HTTPRequest) *httpgrpc.HTTPResponse {
	var ws string
	for _, h := range req.Headers {
		if http.CanonicalHeaderKey(h.Key) == http.CanonicalHeaderKey(frontendpb.WorkspaceHeader) && len(h.Values) > 0 {
			ws = h.Values[0]
		}
	}
	if tenant.ValidID(ws) != nil {
		w.requests.WithLabelValues("400").Inc()
		return &httpgrpc.HTTPResponse{Code: http.StatusBadRequest, Body: []byte("request without a valid workspace")}
	}
	r, err := httpgrpc.ToHTTPRequest(tenant.WithID(ctx, ws), req)
	if err != nil {
		w.requests.WithLabelValues("400").Inc()
		return &httpgrpc.HTTPResponse{Code: http.StatusBadRequest, Body: []byte(err.Error())}
	}
	r.RequestURI = ""
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	w.handler.ServeHTTP(rec, r)
	if n := rec.body.Len(); n > w.cfg.MaxMessageSize-answerHeadroom {
		// Sent, it would end the stream, and the frontend would run the
		// query again on another querier: refused instead, for good.
		rec = &recorder{header: http.Header{}, code: http.StatusOK}
		apierror.WritePrometheus(rec, apierror.New(apierror.LimitExceeded, apierror.IDAnswerTooLarge,
			"the query's answer is too large (%d bytes, limit: %d bytes, -querier.frontend-client.max-message-size-bytes): narrow the query, or raise its step", n, w.cfg.MaxMessageSize-answerHeadroom))
	}
	w.requests.WithLabelValues(fmt.Sprint(rec.code)).Inc()
	return &httpgrpc.HTTPResponse{Code: int32(rec.code), Headers: httpgrpc.FromHeader(rec.header), Body: rec.body.Bytes()}
}

// answerHeadroom is what an answer's headers and framing may take of a
// stream message.
const answerHeadroom = 64 << 10

// recorder is the http.ResponseWriter a request from a frontend is
// answered to.
type recorder struct {
	header      http.Header
	code        int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
