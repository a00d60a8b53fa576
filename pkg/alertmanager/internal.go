package alertmanager

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	httpgrpcserver "github.com/grafana/dskit/httpgrpc/server"
)

// InternalPrefix is the path prefix under which an alertmanager answers the
// other processes: the v2 API of the workspaces it is a replica of, and
// their shared state.
const InternalPrefix = "/internal/alertmanager"

// workspaceHeader names the workspace of a request to InternalPrefix.
const workspaceHeader = "X-Vigil-Alertmanager-Workspace"

// missingHeader marks the answer of an alertmanager that runs no
// Alertmanager for the workspace.
const missingHeader = "X-Vigil-Alertmanager-Missing"

// statePath is where a replica's state of one kind is read (GET) and a
// change of it merged (POST): statePath + "sil" or "nfl".
const statePath = "/state/"

// maxStateBody bounds a state change or snapshot sent between replicas.
const maxStateBody = 64 << 20

// Internal returns the handler, mounted at InternalPrefix, that answers
// the other alertmanagers and the API of every process. It serves only
// requests that arrived on the internal gRPC port (dskit's httpgrpc).
func (m *Multitenant) Internal() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, InternalPrefix)
		ws := r.Header.Get(workspaceHeader)
		if !httpgrpcserver.IsHandledByHttpgrpcServer(r.Context()) || ws == "" {
			http.NotFound(w, r)
			return
		}
		in := m.instance(ws)
		if in == nil {
			w.Header().Set(missingHeader, "true")
			http.Error(w, "this alertmanager runs no Alertmanager for the workspace", http.StatusNotFound)
			return
		}
		switch {
		case strings.HasPrefix(path, statePath):
			m.serveState(w, r, in, strings.TrimPrefix(path, statePath))
		case strings.HasPrefix(path, "/api/v2/"):
			if r.Method == http.MethodPost && strings.TrimSuffix(path, "/") == "/api/v2/alerts" {
				// Alertmanager's store drops an alert over the limits and
				// answers 200: the limits are checked first, and a request
				// over them refused whole.
				body, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				if err := in.limiter.admits(body); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path, r2.URL.RawPath = path, ""
			r2.Header.Del(workspaceHeader)
			in.handler.ServeHTTP(w, r2)
		default:
			http.NotFound(w, r)
		}
	})
}

func (m *Multitenant) serveState(w http.ResponseWriter, r *http.Request, in *instance, key string) {
	if key != stateSilences && key != stateNflog {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet:
		b, err := in.state(key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(b)
	case http.MethodPost:
		b, err := io.ReadAll(io.LimitReader(r.Body, maxStateBody+1))
		if err != nil || len(b) > maxStateBody {
			http.Error(w, "state change unreadable or too large", http.StatusBadRequest)
			return
		}
		if err := in.merge(key, b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	}
}
