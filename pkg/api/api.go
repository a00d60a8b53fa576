// Package api routes Vigil's public HTTP port: the AMP control plane, the
// per-workspace Prometheus-compatible data plane and the Mimir-compatible
// paths. Every route is a row of one table (routes.go) naming its operation
// and resource: the router authenticates the caller, throttles
// control-plane calls, authorises the operation's action on its resource,
// audits, and only then hands the request to the component that serves it.
package api

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
	"github.com/vigil-metrics/vigil/pkg/inflight"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Auth modes.
const (
	// AuthNone trusts every caller as the one configured account, and takes
	// the tenant of the Mimir-compatible paths from X-Scope-OrgID.
	AuthNone = "none"
	// AuthSigV4 verifies AWS Signature Version 4 on every request; the
	// caller's account is the signing key's, and X-Scope-OrgID names a
	// workspace only of that account.
	AuthSigV4 = "sigv4"
)

// orgIDHeader carries the tenant on the Mimir-compatible paths.
const orgIDHeader = "X-Scope-OrgID"

// Config configures authentication of the public port.
type Config struct {
	AuthMode         string `yaml:"mode"`
	AnonymousAccount string `yaml:"anonymous_account_id"`
	CredentialsFile  string `yaml:"credentials_file"`
	// ControlPlaneRate is how many control-plane operations per second one
	// account may call on one replica.
	ControlPlaneRate float64 `yaml:"control_plane_rate"`
	// NoneOnNetwork lets -auth.mode=none listen beyond loopback.
	NoneOnNetwork bool `yaml:"none_allow_non_loopback"`
}

// RegisterFlags registers the auth flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.AuthMode, "auth.mode", AuthNone, "How callers are authenticated. none: every caller is the anonymous account with full access (development and trusted networks only). sigv4: every request must be signed with AWS Signature Version 4 for service aps in -controlplane.region by a key of -auth.credentials-file, and is authorised by the key's user's IAM policies and the workspace's resource policy.")
	f.StringVar(&c.CredentialsFile, "auth.credentials-file", "", "YAML file of the accounts, users, access keys and policies of -auth.mode=sigv4 (accounts: [{id, users: [{name, access_keys: [{id, secret}], managed_policies: [AmazonPrometheusRemoteWriteAccess], policies: [<IAM policy document>]}]}]). Read again when it changes.")
	f.StringVar(&c.AnonymousAccount, "auth.anonymous-account-id", "000000000000", "Account ID that owns the resources of unauthenticated callers when -auth.mode=none.")
	f.BoolVar(&c.NoneOnNetwork, "auth.none-allow-non-loopback", false, "Let -auth.mode=none listen beyond loopback (-server.http-listen-address, -server.grpc-listen-address, -memberlist.bind-addr): every caller who reaches the public port gets full access to the anonymous account, and the gRPC and gossip ports trust their peers. For trusted networks and trials only (docker-compose.yml and the Helm chart's default set it).")
	f.Float64Var(&c.ControlPlaneRate, "auth.control-plane-rate-limit", 10, "Control-plane operations per second one account may call, per replica (a token bucket holding as many); more get ThrottlingException. AMP quota: 10 control-plane API operations per second.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch c.AuthMode {
	case AuthNone:
	case AuthSigV4:
		if c.CredentialsFile == "" {
			return fmt.Errorf("-auth.mode=sigv4 needs -auth.credentials-file")
		}
	default:
		return fmt.Errorf("unsupported auth.mode %q (supported: %s, %s)", c.AuthMode, AuthNone, AuthSigV4)
	}
	if !auth.ValidAccountID(c.AnonymousAccount) {
		return fmt.Errorf("auth.anonymous-account-id must be 12 digits, got %q", c.AnonymousAccount)
	}
	if c.ControlPlaneRate <= 0 {
		return fmt.Errorf("auth.control-plane-rate-limit must be positive")
	}
	return nil
}

// Workspaces finds a workspace for authorisation.
type Workspaces interface {
	// Lookup returns the workspace whatever its account and status, an
	// apierror with cause NotFound for a missing one, or another error when
	// it cannot be read.
	Lookup(ctx context.Context, id string) (*auth.Resource, error)
	// LookupResource returns a resource of a workspace (arnType: a rule
	// groups namespace, say) whatever its account, an apierror with cause
	// NotFound for a missing one.
	LookupResource(ctx context.Context, workspace, arnType, name string) (*auth.Resource, error)
}

// API is the public router.
type API struct {
	cfg        Config
	region     string
	mux        *http.ServeMux // public routes, each wrapped by serveRoute
	operations *http.ServeMux // control-plane routes, bare (forwarded calls)
	routes     map[string]*Route
	workspaces Workspaces
	verifier   *auth.Verifier // nil with -auth.mode=none
	anonymous  auth.Identity
	audit      *auditor
	throttle   *throttle
	bodies     *bodyReader
	budget     *inflight.Budget
	// pushLimit is the remote-write routes' body limit (0: the default).
	pushLimit int
	// pushBytes is what the decoded remote-write requests in flight hold,
	// pushRequests how many there are.
	pushBytes, pushRequests atomic.Int64
	logger                  log.Logger

	// Usage, by the route table's operation names.
	requests     *prometheus.CounterVec
	refused      *prometheus.CounterVec
	pushRejected *prometheus.CounterVec
}

// New returns an API with no handlers bound; components bind theirs.
// region is the AMP region of its resources' ARNs, which requests are
// signed for (the control plane's); keys are the identities of
// -auth.mode=sigv4 (nil otherwise); audit receives one JSON line per
// audited call (nil: none). The bodies it reads before their handlers take
// their memory from budget, the process's budget of request memory.
func New(cfg Config, region string, workspaces Workspaces, keys auth.Keys, audit io.Writer, budget *inflight.Budget, reg prometheus.Registerer, logger log.Logger) (*API, error) {
	full, err := auth.ManagedPolicy(auth.FullAccess)
	if err != nil {
		return nil, err
	}
	a := &API{
		cfg: cfg, region: region, mux: http.NewServeMux(), operations: http.NewServeMux(), routes: map[string]*Route{},
		workspaces: workspaces, logger: logger,
		anonymous: auth.Identity{Account: cfg.AnonymousAccount, User: "anonymous", Policies: []*auth.Policy{full}},
		audit:     newAuditor(audit, region, logger),
		throttle:  newThrottle(cfg.ControlPlaneRate),
		bodies:    newBodyReader(budget),
		budget:    budget,
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_api_requests_total",
			Help: "Requests of the public port that reached their handler, by AMP operation.",
		}, []string{"operation"}),
		refused: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_api_refused_requests_total",
			Help: "Requests of the public port refused before their handler (authentication, authorization, throttling, missing workspace), by AMP operation (Unknown for a path no route serves) and AMP error type.",
		}, []string{"operation", "error_type"}),
	}
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_api_inflight_request_body_bytes",
		Help: "Memory held by the request bodies the front door read before their handlers (signed requests, control-plane calls); with vigil_api_inflight_push_requests_bytes, what -distributor.instance-limits.max-inflight-push-requests-bytes bounds.",
	}, func() float64 { return float64(a.bodies.held.Load()) })
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_api_inflight_push_requests",
		Help: "Remote-write requests in flight, from their arrival until every replica answered (-distributor.instance-limits.max-inflight-push-requests bounds them).",
	}, func() float64 { return float64(a.pushRequests.Load()) })
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_api_inflight_push_requests_bytes",
		Help: "Memory taken by the remote-write requests in flight, until every replica answered: bodies as sent (unless the front door read them), decompressed and decoded.",
	}, func() float64 { return float64(a.pushBytes.Load()) })
	a.pushRejected = promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_api_rejected_push_requests_total",
		Help: "Remote-write requests refused before they reached the distributor (requests in flight, size, media type, invalid body, request memory), by reason.",
	}, []string{"reason"})
	if cfg.AuthMode == AuthSigV4 {
		a.verifier = auth.NewVerifier("aps", region, keys)
	}
	return a, nil
}

type identityKey struct{}

// caller returns the authenticated identity of a request.
func caller(ctx context.Context) (auth.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(auth.Identity)
	return id, ok
}

type bodyKey struct{}

// ServeHTTP authenticates the caller and dispatches to the routes.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.verifier == nil {
		ctx := context.WithValue(tenant.WithAccount(r.Context(), a.anonymous.Account), identityKey{}, a.anonymous)
		a.mux.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	// The body is read at most to the route's own limit, and only once the
	// caller's key is known (and, when the payload hash is declared, only
	// once the signature verified).
	rt := a.routeOf(r)
	var held *body
	defer func() {
		if held != nil {
			a.bodies.release(held)
		}
	}()
	chunked := false
	id, data, err := a.verifier.VerifyReading(r, func(br auth.BodyRead) ([]byte, error) {
		b, err := a.bodies.read(w, r, a.bodyLimit(rt), br.AccessKeyID, br.Verified, br.Chunked)
		if err != nil {
			return nil, err
		}
		held, chunked = b, br.Chunked
		return b.buf, nil
	})
	if err != nil {
		a.reject(w, r, rt, nil, err)
		return
	}
	if held != nil {
		a.bodies.done(held)
	}
	// No handler keeps the body past the request: remote write decodes it
	// into buffers of its own.
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.ContentLength = int64(len(data))
	if chunked {
		// aws-chunked, verified and decoded: the handler sees the data.
		r.Header.Del("X-Amz-Decoded-Content-Length")
		var kept []string
		for _, enc := range strings.Split(r.Header.Get("Content-Encoding"), ",") {
			if enc = strings.TrimSpace(enc); enc != "" && enc != "aws-chunked" {
				kept = append(kept, enc)
			}
		}
		r.Header.Del("Content-Encoding")
		if len(kept) > 0 {
			r.Header.Set("Content-Encoding", strings.Join(kept, ","))
		}
	}
	ctx := context.WithValue(tenant.WithAccount(r.Context(), id.Account), identityKey{}, id)
	ctx = context.WithValue(ctx, bodyKey{}, data)
	a.mux.ServeHTTP(w, r.WithContext(ctx))
}

// bodyLimit is the most a route's body may hold: remote write's the
// distributor's request size, a route's own if it sets one, every other
// route AMP's 1 MB. A path no route serves gets the same, to answer its 404
// after verifying.
func (a *API) bodyLimit(rt *Route) int {
	if rt != nil && rt.Operation == auth.OpRemoteWrite && a.pushLimit > 0 {
		return a.pushLimit
	}
	if rt != nil && rt.maxBody > 0 {
		return rt.maxBody
	}
	return defaultBodyLimit
}

// routeOf finds the route a request is for (nil: none).
func (a *API) routeOf(r *http.Request) *Route {
	_, pattern := a.mux.Handler(r)
	return a.routes[pattern]
}

// reject answers a request refused before its handler, and audits it.
func (a *API) reject(w http.ResponseWriter, r *http.Request, rt *Route, id *auth.Identity, err error) {
	format, op := formatAWS, "Unknown"
	if rt != nil {
		format, op = rt.format, string(rt.Operation)
	}
	a.refused.WithLabelValues(op, apierror.AWSType(apierror.CauseOf(err))).Inc()
	rec := a.audit.begin(w, r, rt, id, true)
	rec.err = err
	format.write(rec, err)
	rec.finish()
}

// Bind mounts handler at every route of operation.
func (a *API) Bind(operation auth.Operation, handler http.Handler) {
	a.bind(func(rt *Route) bool { return rt.Operation == operation && !rt.rulesConfig }, handler, string(operation))
}

// BindRulesConfig mounts the handler of the rules configuration API at
// its routes.
func (a *API) BindRulesConfig(handler http.Handler) {
	a.bind(func(rt *Route) bool { return rt.rulesConfig }, handler, "the rules configuration API")
}

// bind mounts handler at the routes match picks.
func (a *API) bind(match func(*Route) bool, handler http.Handler, what string) {
	found := false
	for _, rt := range routeTable {
		if !match(rt) {
			continue
		}
		found = true
		a.routes[rt.Pattern] = rt
		a.mux.Handle(rt.Pattern, a.serveRoute(rt, handler))
		if rt.control && !rt.readOnly {
			// Only writes are handed to an account's owner replica.
			a.operations.Handle(rt.Pattern, handler)
		}
	}
	if !found {
		panic("api: no route for " + what)
	}
}

// RegisterControlPlane binds the control-plane operations.
func (a *API) RegisterControlPlane(ops map[auth.Operation]http.HandlerFunc) {
	for op, h := range ops {
		a.Bind(op, h)
	}
}

// RegisterPush serves remote write: the routes decode each request and
// hand it to p, with the workspace in the context. limits.MaxRequestSizeBytes
// is also the most of a signed request's body the front door reads.
func (a *API) RegisterPush(p Pusher, limits PushLimits) {
	a.pushLimit = limits.MaxRequestSizeBytes
	a.Bind(auth.OpRemoteWrite, a.pushHandler(p, newRW1Decoder(limits, a.budget, &a.pushBytes, &a.pushRequests)))
}

// RegisterQuery binds a Prometheus HTTP API handler serving paths under
// /api/v1/ for the workspace in the request context.
func (a *API) RegisterQuery(query http.Handler) {
	for _, op := range []auth.Operation{auth.OpQueryMetrics, auth.OpGetLabels, auth.OpGetSeries, auth.OpGetMetricMetadata} {
		a.Bind(op, query)
	}
}

// RegisterRules binds a handler serving Prometheus's /api/v1/rules and
// /api/v1/alerts for the workspace in the request context.
func (a *API) RegisterRules(h http.Handler) {
	a.Bind(auth.OpListRules, h)
	a.Bind(auth.OpListAlerts, h)
}

// RegisterAlertmanager binds a handler serving the Alertmanager v2 API
// (paths under /api/v2/) for the workspace in the request context.
func (a *API) RegisterAlertmanager(h http.Handler) {
	for _, op := range []auth.Operation{auth.OpListAlertManagerAlerts, auth.OpCreateAlertManagerAlerts, auth.OpListAlertManagerAlertGroups,
		auth.OpListAlertManagerReceivers, auth.OpListAlertManagerSilences, auth.OpPutAlertManagerSilences, auth.OpGetAlertManagerSilence,
		auth.OpDeleteAlertManagerSilence, auth.OpGetAlertManagerStatus} {
		a.Bind(op, h)
	}
}

// Operations serves the control-plane writes another replica
// authenticated, authorised, audited and forwarded, with the caller's
// account in the context; reads are never forwarded.
func (a *API) Operations() http.Handler { return a.operations }

// serveRoute wraps a route's handler: throttle, authorise, audit.
func (a *API) serveRoute(rt *Route, next http.Handler) http.Handler {
	requests := a.requests.WithLabelValues(string(rt.Operation))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := caller(r.Context())
		if !ok {
			rt.format.write(w, apierror.New(apierror.Internal, apierror.IDMissingTenant, "no caller identity on the request"))
			return
		}
		if rt.control && !a.throttle.allow(id.Account) {
			a.reject(w, r, rt, &id, apierror.New(apierror.TooManyRequests, apierror.IDControlPlaneThrottled,
				"Rate exceeded: at most %g control-plane operations per second per account.", a.cfg.ControlPlaneRate))
			return
		}
		if rt.control {
			// The body is read once here for request tags and the audit
			// record, and handed on.
			b, release, err := a.body(w, r)
			if err != nil {
				a.reject(w, r, rt, &id, err)
				return
			}
			defer release()
			r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, b))
		}
		r, workspace, err := a.authorize(w, r, rt, id)
		if err != nil {
			// Every refusal is audited: a probe of another account's
			// workspace (answered "not found") as much as a denial.
			a.reject(w, r, rt, &id, err)
			return
		}
		if workspace != "" {
			r = r.WithContext(tenant.WithID(r.Context(), workspace))
		}
		if rt.control {
			r = r.WithContext(auth.WithAuthorizer(r.Context(), a.authorizer(r, id)))
		}
		r = stripPath(r, rt)
		requests.Inc()
		if !rt.control {
			next.ServeHTTP(w, r)
			return
		}
		rec := a.audit.begin(w, r, rt, &id, false)
		next.ServeHTTP(rec, r)
		rec.finish()
	})
}

// sourceIP is the address of the peer; X-Forwarded-For is not trusted.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// throttle is a token bucket per account, holding a second's worth.
type throttle struct {
	rate    float64
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newThrottle(r float64) *throttle {
	return &throttle{rate: r, buckets: map[string]*rate.Limiter{}}
}

// maxBuckets bounds the remembered accounts; only authenticated accounts
// get a bucket.
const maxBuckets = 100_000

func (t *throttle) allow(account string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.buckets[account]
	if !ok {
		if len(t.buckets) >= maxBuckets {
			clear(t.buckets)
		}
		b = rate.NewLimiter(rate.Limit(t.rate), int(math.Ceil(t.rate)))
		t.buckets[account] = b
	}
	return b.Allow()
}
