package controlplane

import (
	"bytes"
	"errors"
	"net/http"
	"slices"

	"github.com/prometheus/prometheus/model/rulefmt"
	"gopkg.in/yaml.v3"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
)

// The rules configuration API of Cortex and Mimir (mimirtool, cortextool),
// over the stored rule groups namespaces: a namespace of that API is a rule
// groups namespace, and its groups those of the namespace's rules file.
// The workspace is the X-Scope-OrgID header's; errors are plain text, as
// Cortex and Mimir answer them.

// orgIDHeader names the workspace of the rules configuration API.
const orgIDHeader = "X-Scope-OrgID"

// Messages of Cortex's and Mimir's ruler API.
const (
	msgNoRuleGroups      = "no rule groups found"
	msgGroupNotFound     = "group does not exist"
	msgNamespaceNotFound = "group namespace does not exist"
)

// RulesConfig serves the rules configuration API at the route table's
// routes of it ({namespace} and {group} in their patterns):
//
//	GET    .../rules                        every namespace's groups (YAML)
//	GET    .../rules/{namespace}            one namespace's groups
//	GET    .../rules/{namespace}/{group}    one group
//	POST   .../rules/{namespace}            a group (YAML body), created or replaced
//	DELETE .../rules/{namespace}/{group}    a group
//	DELETE .../rules/{namespace}            a namespace
func (h *Handler) RulesConfig(w http.ResponseWriter, r *http.Request) {
	namespace, group := r.PathValue("namespace"), r.PathValue("group")
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	var denials editDenials
	ws := r.Header.Get(orgIDHeader)
	if namespace != "" {
		if err := validNamespaceName(namespace); err != nil {
			apierror.WriteText(w, err)
			return
		}
	}
	if write {
		// What IAM decides beyond the route's action is decided here,
		// before the write is handed to the account's owner, and applied
		// there to what the edit turns out to do.
		var err error
		if denials, err = h.authorizeEdit(r, namespace, group); err != nil {
			apierror.WriteText(w, err)
			return
		}
	}
	acct, ok := h.beginText(w, r, write)
	if !ok {
		return
	}
	var err error
	switch {
	case !write && namespace == "":
		err = h.listRulesConfig(w, r, acct, ws)
	case !write:
		err = h.getRulesConfig(w, r, acct, ws, namespace, group)
	case r.Method == http.MethodPost:
		err = h.setRuleGroup(r, acct, ws, namespace, denials)
	case group != "":
		err = h.editGroups(r, acct, ws, namespace, denials, func(groups []rulefmt.RuleGroup) ([]rulefmt.RuleGroup, error) {
			at := slices.IndexFunc(groups, func(g rulefmt.RuleGroup) bool { return g.Name == group })
			if at < 0 {
				return nil, apierror.New(apierror.NotFound, apierror.IDRuleGroupsNamespaceNotFound, msgGroupNotFound)
			}
			return slices.Delete(groups, at, at+1), nil
		})
	default:
		err = h.editGroups(r, acct, ws, namespace, denials, func([]rulefmt.RuleGroup) ([]rulefmt.RuleGroup, error) { return nil, nil })
	}
	if err != nil {
		apierror.WriteText(w, err)
		return
	}
	if write {
		writeJSON(w, http.StatusAccepted, map[string]any{"status": "success", "data": nil, "errorType": "", "error": ""})
	}
}

// Headers carrying, to the account's owner, what the replica the caller
// reached decided: the denial of the namespace's create or delete, which an
// edit needs only when, under the account's lock, it turns out to create or
// delete the namespace. Set only by that replica (a caller's are replaced),
// read only from requests handed over on the internal port.
const (
	denyCreateHeader = "X-Vigil-Deny-Create"
	denyDeleteHeader = "X-Vigil-Deny-Delete"
)

// editDenials are what an edit may not do beyond putting the namespace: a
// group loaded into a namespace the workspace does not have creates it
// (aps:CreateRuleGroupsNamespace, with no tags), and the deletion of its
// last group deletes it (aps:DeleteRuleGroupsNamespace). Both are asked
// before the edit, on the namespace as it was read then, and applied under
// the account's lock to what the edit does.
type editDenials struct{ create, delete error }

// authorizeEdit asks IAM for what the edit may do beyond putting the
// namespace, and records the answers in the request's headers for the
// account's owner. A request another replica handed over carries that
// replica's answers.
func (h *Handler) authorizeEdit(r *http.Request, namespace, group string) (editDenials, error) {
	denied := func(key string) error {
		if msg := r.Header.Get(key); msg != "" {
			return apierror.New(apierror.Forbidden, apierror.IDAccessDenied, "%s", msg)
		}
		return nil
	}
	authorize, ok := auth.AuthorizerFrom(r.Context())
	if !ok {
		if err := noAuthorizer(r); err != nil {
			return editDenials{}, err
		}
		return editDenials{create: denied(denyCreateHeader), delete: denied(denyDeleteHeader)}, nil
	}
	// The caller's own copies of the headers go.
	r.Header.Del(denyCreateHeader)
	r.Header.Del(denyDeleteHeader)
	acct, err := account(r)
	if err != nil {
		return editDenials{}, err
	}
	ws := r.Header.Get(orgIDHeader)
	var out editDenials
	if r.Method != http.MethodPost && (r.Method != http.MethodDelete || group == "") {
		return out, nil
	}
	// The namespace as it is now: its tags decide a delete (one missing
	// has none), and an edit that would create or delete it now is refused
	// here, at once, as a replica of an earlier version expects.
	arn := auth.ARN{Region: h.store.cfg.Region, Account: acct, Type: RuleGroupsNamespaces.ARNType, ID: ws, Name: namespace}.String()
	var tags map[string]string
	var groups []rulefmt.RuleGroup
	cur, err := h.store.DescribeResource(r.Context(), RuleGroupsNamespaces, acct, ws, namespace)
	if err == nil {
		arn, tags = cur.ARN, cur.Tags
		groups, _ = groupsOf(cur.Data)
	}
	if r.Method == http.MethodPost {
		out.create = authorize(auth.OpCreateRuleGroupsNamespace, arn, nil)
		missing := err != nil && apierror.From(err).ID == apierror.IDRuleGroupsNamespaceNotFound
		if missing && out.create != nil {
			return out, out.create
		}
	} else {
		out.delete = authorize(auth.OpDeleteRuleGroupsNamespace, arn, tags)
		if len(groups) == 1 && groups[0].Name == group && out.delete != nil {
			return out, out.delete
		}
	}
	for key, err := range map[string]error{denyCreateHeader: out.create, denyDeleteHeader: out.delete} {
		if err != nil {
			r.Header.Set(key, apierror.From(err).Msg)
		}
	}
	return out, nil
}

// noAuthorizer fails closed: only a write another replica handed over,
// which decided for it, comes without the caller's Authorizer.
func noAuthorizer(r *http.Request) error {
	if forwarded(r) {
		return nil
	}
	return apierror.New(apierror.Internal, apierror.IDInternal, "the request carries no authorizer")
}

// beginText is begin for a route that answers errors as plain text.
func (h *Handler) beginText(w http.ResponseWriter, r *http.Request, write bool) (string, bool) {
	acct, err := account(r)
	if err != nil {
		apierror.WriteText(w, err)
		return "", false
	}
	if write && h.handOver(w, r, acct) {
		return "", false
	}
	return acct, true
}

// groupsOf decodes the groups of a stored rules file.
func groupsOf(data []byte) ([]rulefmt.RuleGroup, error) {
	var f rulefmt.RuleGroups
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	return f.Groups, nil
}

func writeYAML(w http.ResponseWriter, v any) error {
	out, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}

func (h *Handler) listRulesConfig(w http.ResponseWriter, r *http.Request, acct, ws string) error {
	all, err := h.store.ListResources(r.Context(), RuleGroupsNamespaces, acct, ws, "")
	if err != nil {
		return err
	}
	// The list shows each namespace's rules: only those the caller may
	// describe.
	authorize, ok := auth.AuthorizerFrom(r.Context())
	if !ok {
		if err := noAuthorizer(r); err != nil {
			return err
		}
		authorize = func(auth.Operation, string, map[string]string) error { return nil }
	}
	out := map[string][]rulefmt.RuleGroup{}
	for _, ns := range all {
		if authorize(auth.OpDescribeRuleGroupsNamespace, ns.ARN, ns.Tags) != nil {
			continue
		}
		groups, err := groupsOf(ns.Data)
		if err != nil {
			return err
		}
		if len(groups) > 0 {
			out[ns.Name] = groups
		}
	}
	if len(out) == 0 {
		return apierror.New(apierror.NotFound, apierror.IDRuleGroupsNamespaceNotFound, msgNoRuleGroups)
	}
	return writeYAML(w, out)
}

func (h *Handler) getRulesConfig(w http.ResponseWriter, r *http.Request, acct, ws, namespace, group string) error {
	ns, err := h.store.DescribeResource(r.Context(), RuleGroupsNamespaces, acct, ws, namespace)
	if apierror.CauseOf(err) == apierror.NotFound && apierror.From(err).ID == apierror.IDRuleGroupsNamespaceNotFound {
		return apierror.New(apierror.NotFound, apierror.IDRuleGroupsNamespaceNotFound, msgNoRuleGroups)
	}
	if err != nil {
		return err
	}
	groups, err := groupsOf(ns.Data)
	if err != nil {
		return err
	}
	if group == "" {
		return writeYAML(w, map[string][]rulefmt.RuleGroup{namespace: groups})
	}
	for _, g := range groups {
		if g.Name == group {
			return writeYAML(w, g)
		}
	}
	return apierror.New(apierror.NotFound, apierror.IDRuleGroupsNamespaceNotFound, msgGroupNotFound)
}

// setRuleGroup creates or replaces the group of the body in a namespace,
// creating the namespace if it has none. The group is checked alone before
// the account's lock is taken, and the whole file again under it.
func (h *Handler) setRuleGroup(r *http.Request, acct, ws, namespace string, denials editDenials) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var g rulefmt.RuleGroup
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&g); err != nil {
		return apierror.Invalid("body", "The rule group does not decode: %v", err)
	}
	if g.Name == "" {
		return apierror.Invalid("body", "invalid rules config: rule group name must not be empty")
	}
	alone, err := yaml.Marshal(rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{g}})
	if err != nil {
		return err
	}
	if _, err := rulesChecks(h.rulerLimitsOrDefault(), ws).Document(alone); err != nil {
		return err
	}
	return h.editGroups(r, acct, ws, namespace, denials, func(groups []rulefmt.RuleGroup) ([]rulefmt.RuleGroup, error) {
		if at := slices.IndexFunc(groups, func(old rulefmt.RuleGroup) bool { return old.Name == g.Name }); at >= 0 {
			groups[at] = g
			return groups, nil
		}
		return append(groups, g), nil
	})
}

// editGroups changes a namespace's groups by edit; a namespace left with
// none is deleted. A namespace the workspace does not have has no groups.
// Under the account's lock, an edit that would create the namespace is
// refused with denials.create, one that would delete it with
// denials.delete.
func (h *Handler) editGroups(r *http.Request, acct, ws, namespace string, denials editDenials, edit func([]rulefmt.RuleGroup) ([]rulefmt.RuleGroup, error)) error {
	errNone := errors.New("none")
	err := h.store.EditResource(r.Context(), RuleGroupsNamespaces, acct, ws, namespace, func(cur []byte) ([]byte, error) {
		var groups []rulefmt.RuleGroup
		if cur != nil {
			var err error
			if groups, err = groupsOf(cur); err != nil {
				return nil, err
			}
		} else if r.Method == http.MethodDelete {
			return nil, errNone
		}
		next, err := edit(groups)
		switch {
		case err != nil:
			return nil, err
		case len(next) == 0 && cur != nil && denials.delete != nil && r.PathValue("group") != "":
			return nil, denials.delete
		case len(next) == 0:
			return nil, nil
		case cur == nil && denials.create != nil:
			return nil, denials.create
		}
		return yaml.Marshal(rulefmt.RuleGroups{Groups: next})
	}, rulesChecks(h.rulerLimitsOrDefault(), ws))
	if errors.Is(err, errNone) {
		msg := msgNamespaceNotFound
		if r.PathValue("group") != "" {
			msg = msgGroupNotFound
		}
		return apierror.New(apierror.NotFound, apierror.IDRuleGroupsNamespaceNotFound, "%s", msg)
	}
	return err
}
