package controlplane

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// SetRulerLimits sets the per-workspace limits rules files are checked
// against (AMP's quotas until then).
func (h *Handler) SetRulerLimits(l RulerLimits) { h.rulerLimits = l }

func (h *Handler) rulerLimitsOrDefault() RulerLimits {
	if h.rulerLimits == nil {
		return amRulerLimits{}
	}
	return h.rulerLimits
}

// namespaceJSON is AMP's RuleGroupsNamespaceDescription (with data) and
// RuleGroupsNamespaceSummary (without).
type namespaceJSON struct {
	ARN        string            `json:"arn"`
	Name       string            `json:"name"`
	Status     namespaceStatus   `json:"status"`
	Data       []byte            `json:"data,omitempty"`
	CreatedAt  float64           `json:"createdAt"`
	ModifiedAt float64           `json:"modifiedAt"`
	Tags       map[string]string `json:"tags,omitempty"`
}

// namespaceStatus is the status of a resource of a workspace (AMP's
// RuleGroupsNamespaceStatus, AlertManagerDefinitionStatus,
// LoggingConfigurationStatus: one shape).
type namespaceStatus struct {
	StatusCode   string `json:"statusCode"`
	StatusReason string `json:"statusReason,omitempty"`
}

func describeNamespace(r *Resource, withData bool) namespaceJSON {
	out := namespaceJSON{
		ARN: r.ARN, Name: r.Name, Status: namespaceStatus{r.Status.Code, r.Status.Reason}, Tags: r.Tags,
		CreatedAt: float64(r.CreatedAt.UnixMilli()) / 1000, ModifiedAt: float64(r.ModifiedAt.UnixMilli()) / 1000,
	}
	if withData {
		out.Data = r.Data
	}
	return out
}

// accepted answers a create or put: 202 with the status AMP gives while the
// rules load (CREATING, UPDATING). Vigil checked and stored them already:
// the namespace reads ACTIVE from then on.
func accepted(w http.ResponseWriter, r *Resource, status string) {
	out := map[string]any{"name": r.Name, "arn": r.ARN, "status": namespaceStatus{StatusCode: status}}
	if r.Tags != nil {
		out["tags"] = r.Tags
	}
	writeJSON(w, http.StatusAccepted, out)
}

// checkNamespaceInput checks what a create or put names.
func checkNamespaceInput(name string, data []byte, clientToken string) error {
	if err := validNamespaceName(name); err != nil {
		return err
	}
	if len(data) == 0 {
		return apierror.Invalid("data", "data (the base64 rules file) is required.")
	}
	return checkClientToken(clientToken)
}

// CreateRuleGroupsNamespace handles POST /workspaces/{id}/rulegroupsnamespaces.
func (h *Handler) CreateRuleGroupsNamespace(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.begin(w, r, true)
	if !ok {
		return
	}
	var in struct {
		Name        string            `json:"name"`
		Data        []byte            `json:"data"`
		ClientToken string            `json:"clientToken"`
		Tags        map[string]string `json:"tags"`
	}
	if err := decode(r, &in); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	err := checkNamespaceInput(in.Name, in.Data, in.ClientToken)
	if err == nil {
		err = validateTags(in.Tags)
	}
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	ns, err := h.store.CreateResource(r.Context(), RuleGroupsNamespaces, acct, r.PathValue("workspaceId"), in.Name, in.Data, in.Tags, in.ClientToken, rulesChecks(h.rulerLimitsOrDefault(), r.PathValue("workspaceId")))
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	accepted(w, ns, StatusCreating)
}

// PutRuleGroupsNamespace handles PUT /workspaces/{id}/rulegroupsnamespaces/{name}.
func (h *Handler) PutRuleGroupsNamespace(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.begin(w, r, true)
	if !ok {
		return
	}
	var in struct {
		Data        []byte `json:"data"`
		ClientToken string `json:"clientToken"`
	}
	if err := decode(r, &in); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	name := r.PathValue("name")
	if err := checkNamespaceInput(name, in.Data, in.ClientToken); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	ns, err := h.store.PutResource(r.Context(), RuleGroupsNamespaces, acct, r.PathValue("workspaceId"), name, in.Data, in.ClientToken, rulesChecks(h.rulerLimitsOrDefault(), r.PathValue("workspaceId")))
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	accepted(w, ns, StatusUpdating)
}

// DescribeRuleGroupsNamespace handles GET /workspaces/{id}/rulegroupsnamespaces/{name}.
func (h *Handler) DescribeRuleGroupsNamespace(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.begin(w, r, false)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if err := validNamespaceName(name); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	ns, err := h.store.DescribeResource(r.Context(), RuleGroupsNamespaces, acct, r.PathValue("workspaceId"), name)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ruleGroupsNamespace": describeNamespace(ns, true)})
}

// ListRuleGroupsNamespaces handles GET
// /workspaces/{id}/rulegroupsnamespaces?name=&maxResults=&nextToken=: the
// namespaces whose name starts with name, by name. The token names the
// last namespace of the page before, so that a namespace created or
// deleted meanwhile moves no other from one page to another.
func (h *Handler) ListRuleGroupsNamespaces(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.begin(w, r, false)
	if !ok {
		return
	}
	q := r.URL.Query()
	maxResults, err := maxResultsOf(q.Get("maxResults"))
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	after := ""
	if tok := q.Get("nextToken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) == 0 {
			apierror.WriteAWS(w, apierror.Invalid("nextToken", "nextToken is not valid."))
			return
		}
		after = string(raw)
	}
	all, err := h.store.ListResources(r.Context(), RuleGroupsNamespaces, acct, r.PathValue("workspaceId"), q.Get("name"))
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	page := make([]namespaceJSON, 0, min(maxResults, len(all)))
	more := false
	for _, ns := range all {
		if after != "" && ns.Name <= after {
			continue
		}
		if len(page) == maxResults {
			more = true
			break
		}
		page = append(page, describeNamespace(ns, false))
	}
	resp := map[string]any{"ruleGroupsNamespaces": page}
	if more {
		resp["nextToken"] = base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1].Name))
	}
	writeJSON(w, http.StatusOK, resp)
}

// DeleteRuleGroupsNamespace handles DELETE
// /workspaces/{id}/rulegroupsnamespaces/{name}?clientToken=.
func (h *Handler) DeleteRuleGroupsNamespace(w http.ResponseWriter, r *http.Request) {
	h.deleteWithToken(w, r, func(acct, token string) error {
		if err := validNamespaceName(r.PathValue("name")); err != nil {
			return err
		}
		return h.store.DeleteResource(r.Context(), RuleGroupsNamespaces, acct, r.PathValue("workspaceId"), r.PathValue("name"), token)
	})
}

// maxResultsOf parses a list's maxResults: 1 to 1000, 100 when absent.
func maxResultsOf(s string) (int, error) {
	if s == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		return 0, apierror.Invalid("maxResults", "maxResults must be an integer from 1 to 1000.")
	}
	return n, nil
}
