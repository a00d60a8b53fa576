package controlplane

import (
	"net/http"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// singleton is a resource a workspace has at most one of, named by the
// workspace alone (an alert manager definition, a logging configuration):
// AMP's Create, Put or Update, Describe and Delete of it share one shape.
type singleton struct {
	kind Kind
	// name is what the one resource is stored under.
	name string
	// input reads a create's or update's body: the document and the
	// clientToken.
	input func(r *http.Request) (data []byte, token string, err error)
	// checks are the document's checks in the workspace.
	checks func(workspace string) Checks
	// describe names the Describe answer's member and the resource's own
	// fields in it (status and times are added).
	describe func(*Resource) (member string, fields map[string]any)
}

// storeSingleton creates (create) or replaces the workspace's resource,
// in force at once: the answer is AMP's 202 with CREATING or UPDATING,
// then it reads ACTIVE.
func (h *Handler) storeSingleton(w http.ResponseWriter, r *http.Request, s singleton, create bool) {
	acct, ok := h.begin(w, r, true)
	if !ok {
		return
	}
	data, token, err := s.input(r)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	ws := r.PathValue("workspaceId")
	status := StatusCreating
	if create {
		_, err = h.store.CreateResource(r.Context(), s.kind, acct, ws, s.name, data, nil, token, s.checks(ws))
	} else {
		status = StatusUpdating
		_, err = h.store.PutResource(r.Context(), s.kind, acct, ws, s.name, data, token, s.checks(ws))
	}
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"status": namespaceStatus{StatusCode: status}})
}

// describeSingleton answers the workspace's resource.
func (h *Handler) describeSingleton(w http.ResponseWriter, r *http.Request, s singleton) {
	acct, ok := h.begin(w, r, false)
	if !ok {
		return
	}
	res, err := h.store.DescribeResource(r.Context(), s.kind, acct, r.PathValue("workspaceId"), s.name)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	member, fields := s.describe(res)
	fields["status"] = namespaceStatus{res.Status.Code, res.Status.Reason}
	fields["createdAt"] = float64(res.CreatedAt.UnixMilli()) / 1000
	fields["modifiedAt"] = float64(res.ModifiedAt.UnixMilli()) / 1000
	writeJSON(w, http.StatusOK, map[string]any{member: fields})
}

// deleteSingleton deletes the workspace's resource (?clientToken=).
func (h *Handler) deleteSingleton(w http.ResponseWriter, r *http.Request, s singleton) {
	h.deleteWithToken(w, r, func(acct, token string) error {
		return h.store.DeleteResource(r.Context(), s.kind, acct, r.PathValue("workspaceId"), s.name, token)
	})
}
