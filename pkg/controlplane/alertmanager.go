package controlplane

import (
	"errors"
	"net/http"

	"github.com/vigil-metrics/vigil/pkg/alertmanager/definition"
	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// AlertManagerDefinitions is the kind of a workspace's alert manager
// definition: one per workspace, stored under the name definitionName. It
// has no ARN of its own (AMP's operations name the workspace).
var AlertManagerDefinitions = Kind{
	Name:         "alertmanager",
	ResourceType: "AlertManagerDefinition",
	NotFoundID:   apierror.IDAlertManagerDefinitionNotFound,
	ExistsID:     apierror.IDAlertManagerDefinitionExists,
}

// DefinitionName is the name the workspace's one definition is stored
// under.
const DefinitionName = "definition"

// AlertmanagerLimits are the per-workspace bounds and egress rules a
// definition is checked against when it is stored.
type AlertmanagerLimits interface {
	DefinitionChecks(workspace string) (definition.Limits, *definition.Egress)
}

type ampDefinitionLimits struct{}

func (ampDefinitionLimits) DefinitionChecks(string) (definition.Limits, *definition.Egress) {
	return definition.AMPLimits, &definition.Egress{BlockPrivate: true}
}

// SetAlertmanagerLimits sets what definitions are checked against (until
// then: AMP's quotas, and a firewall refusing every private address and
// SNS's api_url).
func (h *Handler) SetAlertmanagerLimits(l AlertmanagerLimits) { h.amLimits = l }

func (h *Handler) definitionChecks(ws string) Checks {
	l := h.amLimits
	if l == nil {
		l = ampDefinitionLimits{}
	}
	lim, eg := l.DefinitionChecks(ws)
	return Checks{Document: func(data []byte) (int, error) {
		if _, err := definition.Parse(data, lim, eg); err != nil {
			var de *definition.Error
			if errors.As(err, &de) {
				return 0, apierror.Invalid("data", "%s", de.Reason)
			}
			return 0, err
		}
		return 0, nil
	}}
}

// definitionStatus is AMP's AlertManagerDefinitionStatus.
type definitionStatus struct {
	StatusCode   string `json:"statusCode"`
	StatusReason string `json:"statusReason,omitempty"`
}

// definitionInput reads a create's or put's body.
func definitionInput(r *http.Request) (data []byte, token string, err error) {
	var in struct {
		Data        []byte `json:"data"`
		ClientToken string `json:"clientToken"`
	}
	if err := decode(r, &in); err != nil {
		return nil, "", err
	}
	if len(in.Data) == 0 {
		return nil, "", apierror.Invalid("data", "data (the base64 alert manager definition) is required.")
	}
	return in.Data, in.ClientToken, checkClientToken(in.ClientToken)
}

// CreateAlertManagerDefinition handles
// POST /workspaces/{id}/alertmanager/definition.
func (h *Handler) CreateAlertManagerDefinition(w http.ResponseWriter, r *http.Request) {
	h.storeDefinition(w, r, true)
}

// PutAlertManagerDefinition handles
// PUT /workspaces/{id}/alertmanager/definition.
func (h *Handler) PutAlertManagerDefinition(w http.ResponseWriter, r *http.Request) {
	h.storeDefinition(w, r, false)
}

// storeDefinition creates or replaces the definition. It is checked in
// full (Alertmanager's loader, the limits, the egress rules) before it is
// stored: a definition that would fail to load is refused at once, and
// the one in force stays in force. The answer is AMP's: 202, CREATING or
// UPDATING; the alertmanagers load it within their poll interval.
func (h *Handler) storeDefinition(w http.ResponseWriter, r *http.Request, create bool) {
	acct, ok := h.begin(w, r, true)
	if !ok {
		return
	}
	data, token, err := definitionInput(r)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	ws := r.PathValue("workspaceId")
	status := StatusCreating
	if create {
		_, err = h.store.CreateResource(r.Context(), AlertManagerDefinitions, acct, ws, DefinitionName, data, nil, token, h.definitionChecks(ws))
	} else {
		status = StatusUpdating
		_, err = h.store.PutResource(r.Context(), AlertManagerDefinitions, acct, ws, DefinitionName, data, token, h.definitionChecks(ws))
	}
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"status": definitionStatus{StatusCode: status}})
}

// DescribeAlertManagerDefinition handles
// GET /workspaces/{id}/alertmanager/definition.
func (h *Handler) DescribeAlertManagerDefinition(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.begin(w, r, false)
	if !ok {
		return
	}
	d, err := h.store.DescribeResource(r.Context(), AlertManagerDefinitions, acct, r.PathValue("workspaceId"), DefinitionName)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"alertManagerDefinition": map[string]any{
		"status":     definitionStatus{d.Status.Code, d.Status.Reason},
		"data":       d.Data,
		"createdAt":  float64(d.CreatedAt.UnixMilli()) / 1000,
		"modifiedAt": float64(d.ModifiedAt.UnixMilli()) / 1000,
	}})
}

// DeleteAlertManagerDefinition handles
// DELETE /workspaces/{id}/alertmanager/definition?clientToken=.
func (h *Handler) DeleteAlertManagerDefinition(w http.ResponseWriter, r *http.Request) {
	h.deleteWithToken(w, r, func(acct, token string) error {
		return h.store.DeleteResource(r.Context(), AlertManagerDefinitions, acct, r.PathValue("workspaceId"), DefinitionName, token)
	})
}
