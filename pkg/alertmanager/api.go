package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// API serves the Alertmanager v2 API of the workspace of each request, on
// any process: alerts go to every replica of the workspace (each
// dispatches them; the notification log they share lets only one
// notify), every other request to the first replica that answers.
type API struct {
	ring     ring.ReadRing
	client   func(ring.InstanceDesc) (Client, error)
	logger   log.Logger
	received *prometheus.CounterVec
}

// NewAPI returns the v2 API over the alertmanagers of r, reached through
// client.
func NewAPI(r ring.ReadRing, client func(ring.InstanceDesc) (Client, error), reg prometheus.Registerer, logger log.Logger) *API {
	return &API{ring: r, client: client, logger: logger,
		received: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alertmanager_alerts_received_total",
			Help: "Alerts received and taken by the workspace's alert manager (AMP's AlertManagerAlertsReceived), counted by the process that received the request.",
		}, []string{"workspace"})}
}

// replicaTimeout bounds one replica's answer to a forwarded request.
const replicaTimeout = 10 * time.Second

func unavailable(format string, args ...any) error {
	return apierror.New(apierror.Unavailable, apierror.IDAlertmanagerUnavailable, format, args...)
}

// ServeHTTP serves /api/v2/... of the request's workspace.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := tenant.ID(r.Context())
	if err != nil {
		apierror.WriteText(w, apierror.New(apierror.BadData, apierror.IDMissingTenant, "no workspace on the request"))
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/v2/") {
		http.NotFound(w, r)
		return
	}
	if svc, ok := a.ring.(services.Service); ok && svc.State() != services.Running {
		apierror.WriteText(w, unavailable("the alertmanager ring is not read yet"))
		return
	}
	replicas, err := Replicas(a.ring, ws)
	if err != nil || len(replicas) == 0 {
		apierror.WriteText(w, unavailable("no alertmanager replica of the workspace is healthy"))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		apierror.WriteText(w, apierror.New(apierror.BadData, "", "reading the request body: %v", err))
		return
	}
	req := &httpgrpc.HTTPRequest{Method: r.Method, Url: InternalPrefix + r.URL.RequestURI(), Body: body,
		Headers: []*httpgrpc.Header{{Key: workspaceHeader, Values: []string{ws}}}}
	for _, h := range []string{"Content-Type", "Accept"} {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Headers = append(req.Headers, &httpgrpc.Header{Key: h, Values: v})
		}
	}
	var resp *httpgrpc.HTTPResponse
	if r.Method == http.MethodPost && strings.TrimSuffix(r.URL.Path, "/") == "/api/v2/alerts" {
		resp, err = a.toAll(r.Context(), replicas, req)
		var alerts []json.RawMessage
		if err == nil && resp.Code/100 == 2 && json.Unmarshal(body, &alerts) == nil {
			a.received.WithLabelValues(ws).Add(float64(len(alerts)))
		}
	} else {
		resp, err = a.toFirst(r.Context(), replicas, req)
	}
	if err != nil {
		apierror.WriteText(w, err)
		return
	}
	_ = httpgrpc.WriteResponse(w, resp)
}

// send sends req to one replica; a replica that cannot be reached, fails,
// or runs no Alertmanager for the workspace yet is an error.
func (a *API) send(ctx context.Context, inst ring.InstanceDesc, req *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, bool, error) {
	c, err := a.client(inst)
	if err != nil {
		return nil, false, err
	}
	// One replica that hangs delays the answer by this at most.
	ctx, cancel := context.WithTimeout(ctx, replicaTimeout)
	defer cancel()
	resp, err := c(ctx, req)
	if err != nil {
		var ok bool
		if resp, ok = httpgrpc.HTTPResponseFromError(err); !ok {
			return nil, false, err
		}
	}
	for _, h := range resp.Headers {
		if h.Key == missingHeader {
			return resp, true, errors.New("the replica runs no Alertmanager for the workspace")
		}
	}
	if resp.Code/100 == 5 {
		return resp, false, errors.New(string(resp.Body))
	}
	return resp, false, nil
}

// toFirst sends req to the replicas in ring order until one answers.
func (a *API) toFirst(ctx context.Context, replicas []ring.InstanceDesc, req *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error) {
	missing := 0
	var last error
	for _, inst := range replicas {
		resp, isMissing, err := a.send(ctx, inst, req)
		if err == nil {
			return resp, nil
		}
		if isMissing {
			missing++
		}
		last = err
		level.Debug(a.logger).Log("msg", "an alertmanager replica did not answer; trying the next", "replica", inst.Id, "err", err)
	}
	if missing == len(replicas) {
		return nil, notConfigured()
	}
	return nil, unavailable("no alertmanager replica of the workspace answered: %v", last)
}

func notConfigured() error {
	return apierror.New(apierror.NotFound, apierror.IDAlertManagerDefinitionNotFound, "the workspace has no alert manager definition (CreateAlertManagerDefinition), or it is not in force yet")
}

// toAll sends req to every replica at once; it answers as the first
// replica that took it, or, if none did, as the first that refused it.
func (a *API) toAll(ctx context.Context, replicas []ring.InstanceDesc, req *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error) {
	type answer struct {
		resp    *httpgrpc.HTTPResponse
		missing bool
		err     error
	}
	answers := make([]answer, len(replicas))
	var wg sync.WaitGroup
	for i, inst := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, missing, err := a.send(ctx, inst, req)
			answers[i] = answer{resp, missing, err}
		}()
	}
	wg.Wait()
	missing := 0
	var refused *httpgrpc.HTTPResponse
	var last error
	for _, an := range answers {
		switch {
		case an.err == nil && an.resp.Code/100 == 2:
			return an.resp, nil
		case an.err == nil && refused == nil:
			refused = an.resp
		case an.missing:
			missing++
		case an.err != nil:
			last = an.err
		}
	}
	if refused != nil {
		return refused, nil
	}
	if missing == len(replicas) {
		return nil, notConfigured()
	}
	return nil, unavailable("no alertmanager replica of the workspace took the alerts: %v", last)
}
