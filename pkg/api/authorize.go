package api

import (
	"bytes"
	"io"
	"net/http"
	"net/netip"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// authorize decides whether the caller may perform the route's action on
// its resource, as IAM does (auth.Authorize). It returns the request (its
// body restored if it was read), and for a data-plane route the workspace
// to serve. A workspace of another account that granted the caller nothing
// is treated exactly as a missing one: same checks, same answers.
func (a *API) authorize(w http.ResponseWriter, r *http.Request, rt *Route, id auth.Identity) (*http.Request, string, error) {
	req := auth.Request{Action: rt.Action(), Principal: id, Secure: r.TLS != nil}
	if ip, err := netip.ParseAddr(sourceIP(r)); err == nil {
		req.SourceIP = ip.Unmap()
	}
	if rt.requestTags != nil {
		// Routes with request tags are control-plane routes, whose body
		// serveRoute read.
		body, _ := r.Context().Value(bodyKey{}).([]byte)
		req.RequestTags, req.TagKeys = rt.requestTags(r, body)
	}
	if rt.scope == scopeAccount {
		req.Resource = "arn:aws:aps:" + a.region + ":" + id.Account + ":" + rt.accountResource
		return r, "", a.decide(&req, id.Policies, nil, id.Account)
	}

	target, err := a.workspaceOf(r, rt)
	if err != nil {
		return r, "", err
	}
	wsID := target.ID
	var res *auth.Resource
	if tenant.ValidID(wsID) == nil {
		res, err = a.workspaces.Lookup(r.Context(), wsID)
		if err != nil && apierror.CauseOf(err) != apierror.NotFound {
			return r, "", err
		}
		// A tag operation's ARN must name the workspace exactly: region
		// and account included.
		if res != nil && target.Account != "" && target.Workspace().String() != res.ARN {
			res = nil
		}
	}
	if res != nil && res.Account != id.Account {
		if !rt.control {
			// Another account's workspace: its resource policy and the
			// caller's identity policies must both allow.
			req.Resource, req.ResourceTags = res.ARN, res.Tags
			d := auth.Authorize(id.Policies, res.Policy, res.Account, &req)
			switch {
			case d.Allowed && res.Active:
				return r, wsID, nil
			case d.Allowed:
				return r, "", notActive(wsID)
			case res.Policy.Principals(id.Account):
				// The account was granted something here: it knows the
				// workspace exists, and learns what it may not do.
				return r, "", forbidden(&req, d)
			}
		}
		res = nil
	}
	if res == nil {
		// Missing, or not the caller's: authorise as for a workspace of
		// the caller's own account that has no tags, then answer "not
		// found" (the control-plane handler does, looking it up itself).
		req.Resource = auth.WorkspaceARN(a.region, id.Account, truncate(wsID))
		if target.Name != "" {
			req.Resource = auth.ARN{Region: a.region, Account: id.Account, Type: target.Type, ID: truncate(wsID), Name: truncate(target.Name)}.String()
		}
		if err := a.decide(&req, id.Policies, nil, id.Account); err != nil {
			return r, "", err
		}
		if rt.control {
			return r, "", nil
		}
		return r, "", apierror.New(apierror.NotFound, apierror.IDWorkspaceNotFound, "Workspace not found: %s", truncate(wsID))
	}
	req.Resource, req.ResourceTags = res.ARN, res.Tags
	if target.Name != "" {
		// A resource of the workspace: the action applies to it, with its
		// own tags (none while it does not exist).
		child, err := a.workspaces.LookupResource(r.Context(), wsID, target.Type, target.Name)
		switch {
		case err == nil:
			req.Resource, req.ResourceTags = child.ARN, child.Tags
		case apierror.CauseOf(err) == apierror.NotFound:
			parsed, _ := auth.ParseARN(res.ARN)
			req.Resource, req.ResourceTags = auth.ARN{Region: parsed.Region, Account: res.Account, Type: target.Type, ID: wsID, Name: target.Name}.String(), nil
		default:
			return r, "", err
		}
	}
	if rt.control {
		// A resource policy grants data-plane actions only: control-plane
		// operations are decided by identity policies alone.
		return r, "", a.decide(&req, id.Policies, nil, id.Account)
	}
	if err := a.decide(&req, id.Policies, res.Policy, id.Account); err != nil {
		return r, "", err
	}
	if !res.Active {
		return r, "", notActive(wsID)
	}
	return r, wsID, nil
}

// authorizer decides further control-plane actions of the caller of r, by
// its identity policies, as authorize decides a control-plane route's.
func (a *API) authorizer(r *http.Request, id auth.Identity) auth.Authorizer {
	base := auth.Request{Principal: id, Secure: r.TLS != nil}
	if ip, err := netip.ParseAddr(sourceIP(r)); err == nil {
		base.SourceIP = ip.Unmap()
	}
	return func(op auth.Operation, arn string, tags map[string]string) error {
		req := base
		req.Action, req.Resource, req.ResourceTags = op.Action(), arn, tags
		return a.decide(&req, id.Policies, nil, id.Account)
	}
}

func (a *API) decide(req *auth.Request, identity []*auth.Policy, resource *auth.Policy, resourceAccount string) error {
	if d := auth.Authorize(identity, resource, resourceAccount, req); !d.Allowed {
		return forbidden(req, d)
	}
	return nil
}

func forbidden(req *auth.Request, d auth.Decision) error {
	return apierror.New(apierror.Forbidden, apierror.IDAccessDenied, "%s", auth.DeniedMessage(req, d))
}

func notActive(id string) error {
	return apierror.New(apierror.NotFound, apierror.IDWorkspaceNotActive, "Workspace %s is not ACTIVE", id)
}

// workspaceOf returns what a route's request acts on: its workspace ID,
// and for a resource of the workspace (a rule groups namespace) its type
// and name. For a route scoped by ARN, the ARN's region and account too.
func (a *API) workspaceOf(r *http.Request, rt *Route) (auth.ARN, error) {
	switch rt.scope {
	case scopeHeader, scopeHeaderNamespace:
		id := r.Header.Get(orgIDHeader)
		if id == "" {
			return auth.ARN{}, apierror.New(apierror.BadData, apierror.IDMissingTenant, "no workspace: set the %s header to a workspace ID", orgIDHeader)
		}
		if rt.scope == scopeHeaderNamespace {
			return auth.ARN{Type: auth.TypeRuleGroupsNamespace, ID: id, Name: r.PathValue("namespace")}, nil
		}
		return auth.ARN{ID: id}, nil
	case scopeARN:
		parsed, err := auth.ParseARN(r.PathValue("resourceArn"))
		if err != nil {
			return auth.ARN{}, apierror.Invalid("resourceArn", "%v", err)
		}
		return parsed, nil
	case scopeNamespace:
		return auth.ARN{Type: auth.TypeRuleGroupsNamespace, ID: r.PathValue("workspaceId"), Name: r.PathValue("name")}, nil
	default:
		return auth.ARN{ID: r.PathValue("workspaceId")}, nil
	}
}

// body returns the request body, reading (and restoring) it when the
// signature check did not already.
func (a *API) body(w http.ResponseWriter, r *http.Request) ([]byte, func(), error) {
	if b, ok := r.Context().Value(bodyKey{}).([]byte); ok {
		return b, func() {}, nil
	}
	b, err := a.bodies.read(w, r, defaultBodyLimit, "", true, false)
	if err != nil {
		return nil, nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(b.buf))
	return b.buf, func() { a.bodies.release(b) }, nil
}

// truncate bounds a caller-chosen ID echoed in messages.
func truncate(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}
