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

// definition is the workspace's alert manager definition as a singleton.
// It is checked in full (Alertmanager's loader, the limits, the egress
// rules) before it is stored: a definition that would fail to load is
// refused at once, and the one in force stays in force; the alertmanagers
// load a stored one within their poll interval.
func (h *Handler) definition() singleton {
	return singleton{kind: AlertManagerDefinitions, name: DefinitionName, input: definitionInput, checks: h.definitionChecks,
		describe: func(d *Resource) (string, map[string]any) {
			return "alertManagerDefinition", map[string]any{"data": d.Data}
		}}
}

// CreateAlertManagerDefinition handles
// POST /workspaces/{id}/alertmanager/definition.
func (h *Handler) CreateAlertManagerDefinition(w http.ResponseWriter, r *http.Request) {
	h.storeSingleton(w, r, h.definition(), true)
}

// PutAlertManagerDefinition handles
// PUT /workspaces/{id}/alertmanager/definition.
func (h *Handler) PutAlertManagerDefinition(w http.ResponseWriter, r *http.Request) {
	h.storeSingleton(w, r, h.definition(), false)
}

// DescribeAlertManagerDefinition handles
// GET /workspaces/{id}/alertmanager/definition.
func (h *Handler) DescribeAlertManagerDefinition(w http.ResponseWriter, r *http.Request) {
	h.describeSingleton(w, r, h.definition())
}

// DeleteAlertManagerDefinition handles
// DELETE /workspaces/{id}/alertmanager/definition?clientToken=.
func (h *Handler) DeleteAlertManagerDefinition(w http.ResponseWriter, r *http.Request) {
	h.deleteSingleton(w, r, h.definition())
}
