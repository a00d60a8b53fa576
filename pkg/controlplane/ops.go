package controlplane

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
)

// Operations returns the handler of each control-plane operation, by AMP
// operation name; the router's table says where each is mounted.
func (h *Handler) Operations() map[auth.Operation]http.HandlerFunc {
	return map[auth.Operation]http.HandlerFunc{
		auth.OpCreateWorkspace:                   h.Create,
		auth.OpListWorkspaces:                    h.List,
		auth.OpDescribeWorkspace:                 h.Describe,
		auth.OpDeleteWorkspace:                   h.Delete,
		auth.OpUpdateWorkspaceAlias:              h.UpdateAlias,
		auth.OpDescribeWorkspaceConfiguration:    h.DescribeConfiguration,
		auth.OpUpdateWorkspaceConfiguration:      h.UpdateConfiguration,
		auth.OpPutResourcePolicy:                 h.PutPolicy,
		auth.OpDescribeResourcePolicy:            h.DescribePolicy,
		auth.OpDeleteResourcePolicy:              h.DeletePolicy,
		auth.OpCreateQueryLoggingConfiguration:   h.CreateQueryLogging,
		auth.OpDescribeQueryLoggingConfiguration: h.DescribeQueryLogging,
		auth.OpUpdateQueryLoggingConfiguration:   h.UpdateQueryLogging,
		auth.OpDeleteQueryLoggingConfiguration:   h.DeleteQueryLogging,
		auth.OpCreateRuleGroupsNamespace:         h.CreateRuleGroupsNamespace,
		auth.OpPutRuleGroupsNamespace:            h.PutRuleGroupsNamespace,
		auth.OpDescribeRuleGroupsNamespace:       h.DescribeRuleGroupsNamespace,
		auth.OpListRuleGroupsNamespaces:          h.ListRuleGroupsNamespaces,
		auth.OpDeleteRuleGroupsNamespace:         h.DeleteRuleGroupsNamespace,
		auth.OpCreateAlertManagerDefinition:      h.CreateAlertManagerDefinition,
		auth.OpPutAlertManagerDefinition:         h.PutAlertManagerDefinition,
		auth.OpDescribeAlertManagerDefinition:    h.DescribeAlertManagerDefinition,
		auth.OpDeleteAlertManagerDefinition:      h.DeleteAlertManagerDefinition,
		auth.OpCreateLoggingConfiguration:        h.CreateLoggingConfiguration,
		auth.OpDescribeLoggingConfiguration:      h.DescribeLoggingConfiguration,
		auth.OpUpdateLoggingConfiguration:        h.UpdateLoggingConfiguration,
		auth.OpDeleteLoggingConfiguration:        h.DeleteLoggingConfiguration,
		auth.OpTagResource:                       h.TagResource,
		auth.OpUntagResource:                     h.UntagResource,
		auth.OpListTagsForResource:               h.ListTags,
	}
}

// decode reads a JSON request body into v; an empty body leaves v as is.
func decode(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return validation("The request body is not valid JSON: %v", err)
	}
	return nil
}

// begin resolves the caller's account and hands a write to the account's
// owner; ok is false when the request was answered.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request, write bool) (string, bool) {
	acct, err := account(r)
	if err != nil {
		apierror.WriteAWS(w, err)
		return "", false
	}
	if write && h.handOver(w, r, acct) {
		return "", false
	}
	if !write {
		r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
	}
	return acct, true
}

var clientTokenRe = regexp.MustCompile(`^[!-~]{1,64}$`)

func checkClientToken(tok string) error {
	if tok != "" && !clientTokenRe.MatchString(tok) {
		return apierror.Invalid("clientToken", "clientToken must be 1 to 64 printable ASCII characters.")
	}
	return nil
}

// UpdateAlias handles UpdateWorkspaceAlias: POST /workspaces/{id}/alias.
func (h *Handler) UpdateAlias(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.begin(w, r, true)
	if !ok {
		return
	}
	var in struct {
		Alias       *string `json:"alias"`
		ClientToken string  `json:"clientToken"`
	}
	if err := decode(r, &in); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	alias := ""
	if in.Alias != nil {
		if n := utf8.RuneCountInString(*in.Alias); n < 1 || n > 100 {
			apierror.WriteAWS(w, apierror.Invalid("alias", "alias must be 1 to 100 characters long."))
			return
		}
		alias = *in.Alias
	}
	if err := checkClientToken(in.ClientToken); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	if err := h.store.UpdateAlias(r.Context(), acct, r.PathValue("workspaceId"), alias); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type configurationJSON struct {
	Status                        statusJSON      `json:"status"`
	LimitsPerLabelSet             []LabelSetLimit `json:"limitsPerLabelSet,omitempty"`
	RetentionPeriodInDays         int             `json:"retentionPeriodInDays,omitempty"`
	OutOfOrderTimeWindowInSeconds *int            `json:"outOfOrderTimeWindowInSeconds,omitempty"`
	RuleQueryOffsetInSeconds      *int            `json:"ruleQueryOffsetInSeconds,omitempty"`
}

// DescribeConfiguration handles DescribeWorkspaceConfiguration:
// GET /workspaces/{id}/configuration.
func (h *Handler) DescribeConfiguration(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.begin(w, r, false)
	if !ok {
		return
	}
	ws, err := h.store.Describe(r.Context(), acct, r.PathValue("workspaceId"))
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	out := configurationJSON{Status: statusJSON{StatusCode: StatusActive}, RetentionPeriodInDays: h.defaultRetentionDays}
	if c := ws.Configuration; c != nil {
		out.LimitsPerLabelSet = c.LimitsPerLabelSet
		if c.RetentionPeriodInDays > 0 {
			out.RetentionPeriodInDays = c.RetentionPeriodInDays
		}
		out.OutOfOrderTimeWindowInSeconds = c.OutOfOrderTimeWindowInSeconds
		out.RuleQueryOffsetInSeconds = c.RuleQueryOffsetInSeconds
	}
	writeJSON(w, http.StatusOK, map[string]any{"workspaceConfiguration": out})
}

// Bounds of a workspace configuration.
const (
	maxRetentionDays = 1095 // AMP's longest retention, three years
	// maxOutOfOrderSeconds bounds the out-of-order window at a day: the
	// ingesters keep a workspace's out-of-order samples in memory until
	// they are compacted, for the whole window.
	maxOutOfOrderSeconds = 86400
	// maxRuleQueryOffsetSeconds is AMP's bound on ruleQueryOffsetInSeconds
	// (UpdateWorkspaceConfiguration: 0 to 86,400).
	maxRuleQueryOffsetSeconds = 86400
	maxLabelSetLimits         = 100
	maxLabelsPerLimitSet      = 30
	maxLabelSetLimitBytes     = 1024
)

var labelNameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func validateLabelSetLimits(limits []LabelSetLimit) error {
	if len(limits) > maxLabelSetLimits {
		return apierror.Invalid("limitsPerLabelSet", "limitsPerLabelSet can have at most %d entries.", maxLabelSetLimits)
	}
	seen := map[string]bool{}
	for i, l := range limits {
		if l.Limits.MaxSeries < 0 {
			return apierror.Invalid("limitsPerLabelSet", "limitsPerLabelSet[%d].limits.maxSeries must not be negative.", i)
		}
		if len(l.LabelSet) > maxLabelsPerLimitSet {
			return apierror.Invalid("limitsPerLabelSet", "limitsPerLabelSet[%d].labelSet has more than %d labels.", i, maxLabelsPerLimitSet)
		}
		size := 0
		for k, v := range l.LabelSet {
			if !labelNameRe.MatchString(k) || !validLabelSetValue(v) {
				return apierror.Invalid("limitsPerLabelSet", "limitsPerLabelSet[%d].labelSet: %q=%q is not a label name and a non-empty value.", i, k, v)
			}
			size += len(k) + len(v)
		}
		if size > maxLabelSetLimitBytes {
			return apierror.Invalid("limitsPerLabelSet", "limitsPerLabelSet[%d].labelSet is larger than %d bytes.", i, maxLabelSetLimitBytes)
		}
		key := labelSetKey(l.LabelSet)
		if seen[key] {
			return apierror.Invalid("limitsPerLabelSet", "limitsPerLabelSet[%d].labelSet is listed twice.", i)
		}
		seen[key] = true
	}
	return nil
}

// UpdateConfiguration handles UpdateWorkspaceConfiguration:
// PATCH /workspaces/{id}/configuration.
func (h *Handler) UpdateConfiguration(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.begin(w, r, true)
	if !ok {
		return
	}
	var in struct {
		ClientToken           string           `json:"clientToken"`
		LimitsPerLabelSet     *[]LabelSetLimit `json:"limitsPerLabelSet"`
		RetentionPeriodInDays *int             `json:"retentionPeriodInDays"`
		OutOfOrderWindow      *int             `json:"outOfOrderTimeWindowInSeconds"`
		RuleQueryOffset       *int             `json:"ruleQueryOffsetInSeconds"`
	}
	if err := decode(r, &in); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	if o := in.OutOfOrderWindow; o != nil && (*o < 0 || *o > maxOutOfOrderSeconds) {
		apierror.WriteAWS(w, apierror.Invalid("outOfOrderTimeWindowInSeconds", "outOfOrderTimeWindowInSeconds must be from 0 to %d.", maxOutOfOrderSeconds))
		return
	}
	if o := in.RuleQueryOffset; o != nil && (*o < 0 || *o > maxRuleQueryOffsetSeconds) {
		apierror.WriteAWS(w, apierror.Invalid("ruleQueryOffsetInSeconds", "ruleQueryOffsetInSeconds must be from 0 to %d.", maxRuleQueryOffsetSeconds))
		return
	}
	if err := checkClientToken(in.ClientToken); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	if d := in.RetentionPeriodInDays; d != nil && (*d < 1 || *d > maxRetentionDays) {
		apierror.WriteAWS(w, apierror.Invalid("retentionPeriodInDays", "retentionPeriodInDays must be from 1 to %d.", maxRetentionDays))
		return
	}
	if in.LimitsPerLabelSet != nil {
		if err := validateLabelSetLimits(*in.LimitsPerLabelSet); err != nil {
			apierror.WriteAWS(w, err)
			return
		}
	}
	err := h.store.UpdateConfiguration(r.Context(), acct, r.PathValue("workspaceId"),
		ConfigurationUpdate{RetentionPeriodInDays: in.RetentionPeriodInDays, LimitsPerLabelSet: in.LimitsPerLabelSet, OutOfOrderTimeWindowInSeconds: in.OutOfOrderWindow,
			RuleQueryOffsetInSeconds: in.RuleQueryOffset})
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	// The new configuration is in force as soon as it is stored.
	writeJSON(w, http.StatusAccepted, map[string]any{"status": statusJSON{StatusCode: StatusActive}})
}

// PutPolicy handles PutResourcePolicy: PUT /workspaces/{id}/policy.
func (h *Handler) PutPolicy(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.begin(w, r, true)
	if !ok {
		return
	}
	var in struct {
		PolicyDocument *string `json:"policyDocument"`
		ClientToken    string  `json:"clientToken"`
		RevisionID     string  `json:"revisionId"`
	}
	if err := decode(r, &in); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	if in.PolicyDocument == nil || *in.PolicyDocument == "" {
		apierror.WriteAWS(w, apierror.Invalid("policyDocument", "policyDocument is required."))
		return
	}
	if err := checkClientToken(in.ClientToken); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	rev, err := h.store.PutPolicy(r.Context(), acct, r.PathValue("workspaceId"), *in.PolicyDocument, in.RevisionID, in.ClientToken)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"policyStatus": StatusActive, "revisionId": rev})
}

// DescribePolicy handles DescribeResourcePolicy: GET /workspaces/{id}/policy.
func (h *Handler) DescribePolicy(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.begin(w, r, false)
	if !ok {
		return
	}
	p, err := h.store.Policy(r.Context(), acct, r.PathValue("workspaceId"))
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"policyDocument": p.Document, "policyStatus": StatusActive, "revisionId": p.RevisionID})
}

// DeletePolicy handles DeleteResourcePolicy:
// DELETE /workspaces/{id}/policy?revisionId=&clientToken=.
func (h *Handler) DeletePolicy(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.begin(w, r, true)
	if !ok {
		return
	}
	q := r.URL.Query()
	if err := checkClientToken(q.Get("clientToken")); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	if err := h.store.DeletePolicy(r.Context(), acct, r.PathValue("workspaceId"), q.Get("revisionId"), q.Get("clientToken")); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// tagged resolves the resourceArn of a tag operation to a workspace, or a
// resource of one, of the caller's account; any other ARN of this service
// is a resource that does not exist.
func (h *Handler) tagged(r *http.Request, acct string) (auth.ARN, error) {
	raw := r.PathValue("resourceArn")
	a, err := auth.ParseARN(raw)
	if err != nil {
		return auth.ARN{}, apierror.Invalid("resourceArn", "%v", err)
	}
	if a.Region != h.cfg.Region || a.Account != acct {
		typ, id := "Workspace", a.ID
		if k, ok := kinds[a.Type]; ok {
			typ, id = k.ResourceType, a.Name
		}
		return auth.ARN{}, apierror.New(apierror.NotFound, apierror.IDWorkspaceNotFound, "Resource not found: %s", raw).About(typ, truncate(id))
	}
	return a, nil
}

// beginTagged is begin for the tag operations, which name their resource
// by ARN.
func (h *Handler) beginTagged(w http.ResponseWriter, r *http.Request, write bool) (acct string, a auth.ARN, ok bool) {
	if acct, ok = h.begin(w, r, write); !ok {
		return "", auth.ARN{}, false
	}
	a, err := h.tagged(r, acct)
	if err != nil {
		apierror.WriteAWS(w, err)
		return "", auth.ARN{}, false
	}
	return acct, a, true
}

// TagResource handles TagResource: POST /tags/{resourceArn}.
func (h *Handler) TagResource(w http.ResponseWriter, r *http.Request) {
	acct, a, ok := h.beginTagged(w, r, true)
	if !ok {
		return
	}
	var in struct {
		Tags map[string]string `json:"tags"`
	}
	if err := decode(r, &in); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	if in.Tags == nil {
		apierror.WriteAWS(w, apierror.Invalid("tags", "tags is required."))
		return
	}
	err := validateTags(in.Tags)
	if err == nil {
		if k, ok := kinds[a.Type]; ok {
			err = h.store.TagResourceByName(r.Context(), k, acct, a.ID, a.Name, in.Tags, nil)
		} else {
			err = h.store.Tag(r.Context(), acct, a.ID, in.Tags)
		}
	}
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// UntagResource handles UntagResource: DELETE /tags/{resourceArn}?tagKeys=.
func (h *Handler) UntagResource(w http.ResponseWriter, r *http.Request) {
	acct, a, ok := h.beginTagged(w, r, true)
	if !ok {
		return
	}
	keys := r.URL.Query()["tagKeys"]
	if len(keys) == 0 {
		apierror.WriteAWS(w, apierror.Invalid("tagKeys", "tagKeys is required."))
		return
	}
	if len(keys) > 50 {
		apierror.WriteAWS(w, apierror.Invalid("tagKeys", "tagKeys can name at most 50 keys."))
		return
	}
	var err error
	if k, ok := kinds[a.Type]; ok {
		err = h.store.TagResourceByName(r.Context(), k, acct, a.ID, a.Name, nil, keys)
	} else {
		err = h.store.Untag(r.Context(), acct, a.ID, keys)
	}
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// ListTags handles ListTagsForResource: GET /tags/{resourceArn}.
func (h *Handler) ListTags(w http.ResponseWriter, r *http.Request) {
	acct, a, ok := h.beginTagged(w, r, false)
	if !ok {
		return
	}
	var tags map[string]string
	if k, ok := kinds[a.Type]; ok {
		res, err := h.store.DescribeResource(r.Context(), k, acct, a.ID, a.Name)
		if err != nil {
			apierror.WriteAWS(w, err)
			return
		}
		tags = res.Tags
	} else {
		ws, err := h.store.Describe(r.Context(), acct, a.ID)
		if err != nil {
			apierror.WriteAWS(w, err)
			return
		}
		tags = ws.Tags
	}
	if tags == nil {
		tags = map[string]string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tags": tags})
}

// labelSetKey identifies a label set whatever its map order.
func labelSetKey(ls map[string]string) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(ls[k])
		b.WriteByte(0)
	}
	return b.String()
}

// validLabelSetValue is AMP's rule for the values of limitsPerLabelSet:
// printable ASCII, not only spaces.
func validLabelSetValue(v string) bool {
	if strings.TrimSpace(v) == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}
