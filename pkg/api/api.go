// Package api routes Vigil's public HTTP port: the AMP control plane, the
// per-workspace Prometheus-compatible data plane and the Mimir-compatible
// paths. It authenticates callers and resolves the workspace (tenant) before
// handing a request to the component that serves it.
package api

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-kit/log"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
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

// maxSignedBody bounds the body read to verify a signature over it; the
// components bound their bodies more tightly after.
const maxSignedBody = 16 << 20

// orgIDHeader carries the tenant on the Mimir-compatible paths.
const orgIDHeader = "X-Scope-OrgID"

// Config configures authentication of the public port.
type Config struct {
	AuthMode         string `yaml:"mode"`
	AnonymousAccount string `yaml:"anonymous_account_id"`
	CredentialsFile  string `yaml:"credentials_file"`
	// Region is the AMP region requests are signed for; set from the
	// control plane's.
	Region string `yaml:"-"`
}

// RegisterFlags registers the auth flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.AuthMode, "auth.mode", AuthNone, "How callers are authenticated. none: every caller is the anonymous account (development and trusted networks only). sigv4: every request must be signed with AWS Signature Version 4 for service aps in -controlplane.region by a key of -auth.credentials-file; a caller reaches only its own account's workspaces.")
	f.StringVar(&c.CredentialsFile, "auth.credentials-file", "", "YAML file of the accounts, users and access keys of -auth.mode=sigv4 (accounts: [{id, users: [{name, access_keys: [{id, secret}], managed_policies: [AmazonPrometheusFullAccess]}]}]). Read again when it changes.")
	f.StringVar(&c.AnonymousAccount, "auth.anonymous-account-id", "000000000000", "Account ID that owns the resources of unauthenticated callers when -auth.mode=none.")
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
	if c.AnonymousAccount == "" {
		return fmt.Errorf("auth.anonymous-account-id must not be empty")
	}
	return nil
}

// WorkspaceChecker tells whether a workspace may receive writes and queries.
type WorkspaceChecker interface {
	// CheckActive returns nil for an ACTIVE workspace and an apierror with
	// cause NotFound for a missing or inactive one.
	CheckActive(ctx context.Context, id string) error
}

// ControlPlane serves the AMP workspace operations.
type ControlPlane interface {
	Create(http.ResponseWriter, *http.Request)
	List(http.ResponseWriter, *http.Request)
	Describe(http.ResponseWriter, *http.Request)
	Delete(http.ResponseWriter, *http.Request)
}

// API is the public router.
type API struct {
	cfg      Config
	mux      *http.ServeMux
	checker  WorkspaceChecker
	verifier *auth.Verifier // nil with -auth.mode=none
	logger   log.Logger
}

// New returns an API with no routes; components register theirs. keys are
// the identities of -auth.mode=sigv4 (nil otherwise).
func New(cfg Config, checker WorkspaceChecker, keys auth.Keys, logger log.Logger) *API {
	a := &API{cfg: cfg, mux: http.NewServeMux(), checker: checker, logger: logger}
	if cfg.AuthMode == AuthSigV4 {
		a.verifier = auth.NewVerifier("aps", cfg.Region, keys)
	}
	return a
}

// ServeHTTP authenticates the caller and dispatches to the registered routes.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.verifier == nil {
		r = r.WithContext(tenant.WithAccount(r.Context(), a.cfg.AnonymousAccount))
		a.mux.ServeHTTP(w, r)
		return
	}
	if r.ContentLength > maxSignedBody {
		writeError(w, r, apierror.New(apierror.TooLarge, apierror.IDRequestTooLarge, "request body over %d bytes", maxSignedBody))
		return
	}
	var body []byte
	id, err := a.verifier.VerifyReading(r, func() ([]byte, error) {
		var err error
		if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxSignedBody)); err != nil {
			return nil, apierror.New(apierror.TooLarge, apierror.IDRequestTooLarge, "request body over %d bytes", maxSignedBody)
		}
		return body, nil
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r = r.WithContext(tenant.WithAccount(r.Context(), id.Account))
	a.mux.ServeHTTP(w, r)
}

// writeError answers an authentication failure in the form of the API the
// path belongs to.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/remote_write") || p == "/api/v1/push":
		apierror.WriteText(w, err)
	case strings.Contains(p, "/api/v1/"):
		apierror.WritePrometheus(w, err)
	default:
		apierror.WriteAWS(w, err)
	}
}

// RegisterControlPlane mounts the workspace operations.
func (a *API) RegisterControlPlane(cp ControlPlane) {
	a.mux.HandleFunc("POST /workspaces", cp.Create)
	a.mux.HandleFunc("GET /workspaces", cp.List)
	a.mux.HandleFunc("GET /workspaces/{workspaceId}", cp.Describe)
	a.mux.HandleFunc("DELETE /workspaces/{workspaceId}", cp.Delete)
}

// RegisterPush mounts a remote-write handler, which finds the workspace in
// the request context, at the workspace's remote_write path and at Mimir's
// /api/v1/push.
func (a *API) RegisterPush(push http.Handler) {
	a.mux.Handle("POST /workspaces/{workspaceId}/api/v1/remote_write", a.workspaceFromPath(push, apierror.WriteText))
	a.mux.Handle("POST /api/v1/push", a.workspaceFromOrgID(push, apierror.WriteText))
}

// RegisterQuery mounts a Prometheus HTTP API handler that serves paths under
// /api/v1/ for the workspace in the request context, below each workspace's
// endpoint and below Mimir's /prometheus prefix.
func (a *API) RegisterQuery(query http.Handler) {
	a.mux.Handle("/workspaces/{workspaceId}/api/v1/", a.workspaceFromPath(stripPrefix(query, func(r *http.Request) string {
		return "/workspaces/" + r.PathValue("workspaceId")
	}), apierror.WritePrometheus))
	a.mux.Handle("/prometheus/api/v1/", a.workspaceFromOrgID(stripPrefix(query, func(*http.Request) string {
		return "/prometheus"
	}), apierror.WritePrometheus))
}

func stripPrefix(next http.Handler, prefix func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := prefix(r)
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, p)
		r2.URL.RawPath = ""
		next.ServeHTTP(w, r2)
	})
}

type errorWriter func(http.ResponseWriter, error)

func (a *API) workspaceFromPath(next http.Handler, writeErr errorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.serveWorkspace(w, r, r.PathValue("workspaceId"), next, writeErr)
	})
}

func (a *API) workspaceFromOrgID(next http.Handler, writeErr errorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(orgIDHeader)
		if id == "" {
			writeErr(w, apierror.New(apierror.BadData, apierror.IDMissingTenant, "no workspace: set the %s header to a workspace ID", orgIDHeader))
			return
		}
		a.serveWorkspace(w, r, id, next, writeErr)
	})
}

func (a *API) serveWorkspace(w http.ResponseWriter, r *http.Request, id string, next http.Handler, writeErr errorWriter) {
	if err := a.checker.CheckActive(r.Context(), id); err != nil {
		writeErr(w, err)
		return
	}
	next.ServeHTTP(w, r.WithContext(tenant.WithID(r.Context(), id)))
}
