package ruler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/httpgrpc"
	httpgrpcserver "github.com/grafana/dskit/httpgrpc/server"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/rules"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/promapi"
	"github.com/vigil-metrics/vigil/pkg/slots"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// InternalPrefix is the path prefix under which a ruler answers the rules
// and alerts of its own groups, to the rules API of any replica.
const InternalPrefix = "/internal/ruler"

// workspaceHeader names the workspace of a request to InternalPrefix.
const workspaceHeader = "X-Vigil-Ruler-Workspace"

// The paths of the rules and alerts APIs.
const (
	rulesPath  = "/api/v1/rules"
	alertsPath = "/api/v1/alerts"
)

// workspaceGroups is what Prometheus's API reads the rules and alerts of
// one workspace from.
type workspaceGroups []*rules.Group

func (g workspaceGroups) RuleGroups() []*rules.Group { return g }

func (g workspaceGroups) AlertingRules() []*rules.AlertingRule {
	var out []*rules.AlertingRule
	for _, grp := range g {
		for _, r := range grp.Rules() {
			if a, ok := r.(*rules.AlertingRule); ok {
				out = append(out, a)
			}
		}
	}
	return out
}

// Internal returns the handler, to be mounted at InternalPrefix, that
// answers the rules API with the groups this ruler evaluates, rendered and
// filtered by Prometheus's own API. It serves only requests that arrived on
// the internal gRPC port (dskit's httpgrpc service).
func (rl *Ruler) Internal() http.Handler {
	api := promapi.New(promapi.Options{
		Rules: func(ctx context.Context) v1.RulesRetriever {
			ws, _ := tenant.ID(ctx)
			return workspaceGroups(rl.RuleGroups(ws))
		},
		Logger: rl.logger,
	})
	router := route.New()
	api.Register(router.WithPrefix("/api/v1"))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, InternalPrefix)
		ws := r.Header.Get(workspaceHeader)
		if !httpgrpcserver.IsHandledByHttpgrpcServer(r.Context()) || (path != rulesPath && path != alertsPath) || ws == "" {
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(tenant.WithID(r.Context(), ws))
		r2.URL.Path, r2.URL.RawPath = path, ""
		router.ServeHTTP(w, r2)
	})
}

// Client sends a request to one ruler's InternalPrefix.
type Client = func(ctx context.Context, req *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error)

// apiOp: the rulers whose groups the rules API reads. A ruler leaving still
// evaluates its groups until it has stopped them.
var apiOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE, ring.LEAVING}, nil)

// Bounds on the rules and alerts APIs, whose answers every ruler renders
// and this process merges in memory: at most maxAPIAnswerBytes of rulers'
// answers per request, at most maxAPIRequests requests at once, of which
// at most maxAPIRequestsPerWorkspace for one workspace (Grafana asks for
// rules and alerts together; its further requests wait for its own slots,
// not taking the others', at most apiSlotWait).
const (
	maxAPIAnswerBytes          = 32 << 20
	maxAPIRequests             = 4
	maxAPIRequestsPerWorkspace = 2
	apiSlotWait                = 30 * time.Second
)

// API serves Prometheus's rules and alerts APIs for the workspace of each
// request, from every ruler of the ring: each answers for its own groups,
// filtered by Prometheus's own code, and the answers are merged.
type API struct {
	ring   ring.ReadRing
	client func(ring.InstanceDesc) (Client, error)
	logger log.Logger
	// slots are the process's and each workspace's, waited for at most
	// slotWait.
	slots    *slots.Limiter
	slotWait time.Duration
	// noRules is Prometheus's rules and alerts API over no rules, which
	// answers when the ring has no ruler.
	noRules http.Handler
}

// NewAPI returns the rules and alerts APIs over the rulers of r, reached
// through client.
func NewAPI(r ring.ReadRing, client func(ring.InstanceDesc) (Client, error), logger log.Logger) *API {
	none := promapi.New(promapi.Options{
		Rules:  func(context.Context) v1.RulesRetriever { return workspaceGroups(nil) },
		Logger: logger,
	})
	router := route.New()
	none.Register(router.WithPrefix("/api/v1"))
	return &API{ring: r, client: client, logger: logger, slots: slots.NewLimiter(maxAPIRequests), slotWait: apiSlotWait, noRules: router}
}

// acquire waits for a slot of the workspace, then for one of the process;
// release gives both back.
func (a *API) acquire(ctx context.Context, ws string) (release func(), err error) {
	wait := time.NewTimer(a.slotWait)
	defer wait.Stop()
	release, err = a.slots.Acquire(ctx, ws, maxAPIRequestsPerWorkspace, wait.C)
	switch {
	case errors.Is(err, slots.ErrNoneFree):
		return nil, apierror.New(apierror.TooManyRequests, apierror.IDWorkspaceRulesAPIConcurrency,
			"too many concurrent rules and alerts API requests of this workspace: no slot of its %d free within %s", maxAPIRequestsPerWorkspace, a.slotWait)
	case errors.Is(err, slots.ErrAllTaken):
		return nil, apierror.New(apierror.TooManyRequests, "", "too many concurrent rules and alerts API requests: no slot of the %d free within %s", maxAPIRequests, a.slotWait)
	case err != nil:
		return nil, apierror.New(apierror.Unavailable, "", "request cancelled while waiting for one of the rules API's %d slots (%d per workspace)", maxAPIRequests, maxAPIRequestsPerWorkspace)
	}
	return release, nil
}

// ServeHTTP serves /api/v1/rules and /api/v1/alerts.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	if path != rulesPath && path != alertsPath {
		apierror.WritePrometheus(w, apierror.New(apierror.NotFound, "", "unknown API endpoint %s", r.URL.Path))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	ws, err := tenant.ID(r.Context())
	if err != nil {
		apierror.WritePrometheus(w, apierror.New(apierror.BadData, apierror.IDMissingTenant, "no workspace on the request"))
		return
	}
	release, err := a.acquire(r.Context(), ws)
	if err != nil {
		apierror.WritePrometheus(w, err)
		return
	}
	defer release()
	query := r.URL.Query()
	var page pageRequest
	if path == rulesPath {
		var err error
		if page, err = parsePage(query); err != nil {
			apierror.WritePrometheus(w, err)
			return
		}
		// Each ruler answers every group that passes the filters; the page
		// is cut from their merged answers.
		query.Del("group_limit")
		query.Del("group_next_token")
	}
	answers, failed := a.fanOut(r.Context(), ws, path, query)
	if failed != nil && failed.noRuler {
		// Prometheus's API over no rules answers, its filters checked.
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = path, ""
		a.noRules.ServeHTTP(w, r2)
		return
	}
	if failed != nil {
		// A ruler refusing the request (a bad filter) refuses it as
		// Prometheus would: its answer is passed on.
		if failed.resp != nil {
			_ = httpgrpc.WriteResponse(w, failed.resp)
			return
		}
		apierror.WritePrometheus(w, failed.err)
		return
	}
	var data any
	if path == rulesPath {
		data, err = mergeRules(answers, page)
	} else {
		data, err = mergeAlerts(answers)
	}
	if err != nil {
		apierror.WritePrometheus(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}

// failure is why the rulers' answers cannot be merged: the answer of a
// ruler that refused the request, or an error.
type failure struct {
	resp *httpgrpc.HTTPResponse
	err  error
	// noRuler: the ring has no ruler, so no rules are evaluated.
	noRuler bool
}

// fanOut asks every ruler for the workspace's rules or alerts; it returns
// the data of each answer.
func (a *API) fanOut(ctx context.Context, ws, path string, query url.Values) ([]json.RawMessage, *failure) {
	if svc, ok := a.ring.(services.Service); ok && svc.State() != services.Running {
		// Not read yet: an empty answer would say the workspace has no
		// rules.
		return nil, &failure{err: unavailable("the ruler ring is not read yet")}
	}
	rs, err := a.ring.GetAllHealthy(apiOp)
	if errors.Is(err, ring.ErrEmptyRing) {
		return nil, &failure{noRuler: true}
	}
	if err != nil {
		return nil, &failure{err: unavailable("cannot read the ruler ring: %v", err)}
	}
	req := &httpgrpc.HTTPRequest{
		Method:  http.MethodGet,
		Url:     InternalPrefix + path + "?" + query.Encode(),
		Headers: []*httpgrpc.Header{{Key: workspaceHeader, Values: []string{ws}}},
	}
	var (
		mu      sync.Mutex
		answers []rulerAnswer
		size    int
		first   *failure
		wg      sync.WaitGroup
	)
	for _, inst := range rs.Instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data, f := a.ask(ctx, inst, req)
			mu.Lock()
			defer mu.Unlock()
			if f != nil {
				if first == nil || (first.resp == nil && f.resp != nil) {
					first = f
				}
				return
			}
			if size += len(data); size > maxAPIAnswerBytes && first == nil {
				first = &failure{err: apierror.New(apierror.LimitExceeded, apierror.IDAnswerTooLarge,
					"the rulers' answers for this workspace exceed %d MB: narrow the request (exclude_alerts=true, type, rule_group[], file[], match[])", maxAPIAnswerBytes>>20)}
				answers = nil
			}
			if first == nil {
				answers = append(answers, rulerAnswer{inst.Id, data})
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	// In the rulers' order, not their answers': the alerts API lists
	// alerts in the same order from one request to the next.
	slices.SortFunc(answers, func(a, b rulerAnswer) int { return strings.Compare(a.ruler, b.ruler) })
	out := make([]json.RawMessage, len(answers))
	for i, a := range answers {
		out[i] = a.data
	}
	return out, nil
}

type rulerAnswer struct {
	ruler string
	data  json.RawMessage
}

// ask asks one ruler.
func (a *API) ask(ctx context.Context, inst ring.InstanceDesc, req *httpgrpc.HTTPRequest) (json.RawMessage, *failure) {
	c, err := a.client(inst)
	if err != nil {
		return nil, &failure{err: unavailable("cannot reach ruler %s: %v", inst.Id, err)}
	}
	resp, err := c(ctx, req)
	if err != nil {
		var ok bool
		if resp, ok = httpgrpc.HTTPResponseFromError(err); !ok {
			return nil, &failure{err: unavailable("ruler %s did not answer: %v", inst.Id, err)}
		}
	}
	if resp.Code/100 == 4 && resp.Code != http.StatusNotFound {
		return nil, &failure{resp: resp}
	}
	if resp.Code != http.StatusOK {
		return nil, &failure{err: unavailable("ruler %s answered %d: %s", inst.Id, resp.Code, bytes.TrimSpace(resp.Body))}
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &env); err != nil || env.Status != "success" {
		return nil, &failure{err: unavailable("ruler %s answered what is not a Prometheus API answer", inst.Id)}
	}
	return env.Data, nil
}

func unavailable(format string, args ...any) error {
	return apierror.New(apierror.Unavailable, apierror.IDRulerUnavailable, "cannot read the rules of every ruler, retry: "+format, args...)
}

// pageRequest is the rules API's pagination (Prometheus's group_limit and
// group_next_token).
type pageRequest struct {
	limit int64 // 0: every group
	next  string
}

// parsePage reads the pagination parameters, refusing them as Prometheus
// does.
func parsePage(q url.Values) (pageRequest, error) {
	limit, next := q.Get("group_limit"), q.Get("group_next_token")
	if next != "" && limit == "" {
		return pageRequest{}, invalidParam("group_next_token", errors.New("group_limit needs to be present in order to paginate over the groups"))
	}
	if limit == "" {
		return pageRequest{}, nil
	}
	n, err := strconv.ParseInt(limit, 10, 32)
	if err != nil {
		return pageRequest{}, invalidParam("group_limit", fmt.Errorf("group_limit needs to be a valid number: %w", err))
	}
	if n <= 0 {
		return pageRequest{}, invalidParam("group_limit", errors.New("group_limit needs to be greater than 0"))
	}
	return pageRequest{limit: n, next: next}, nil
}

func invalidParam(name string, err error) error {
	return apierror.New(apierror.BadData, "", "invalid parameter %q: %v", name, err)
}

// groupToken is Prometheus's group_next_token of a group.
func groupToken(file, name string) string {
	h := sha256.Sum256([]byte(file + ";" + name))
	return hex.EncodeToString(h[:])
}

// answeredGroup is a group as a ruler answered it.
type answeredGroup struct {
	name, file     string
	lastEvaluation time.Time
	raw            json.RawMessage
}

// mergeRules merges the rulers' groups in Prometheus's order (file, then
// name) and cuts the page asked for. A group two rulers answer for (one
// handing it to the other) is the one evaluated last.
func mergeRules(answers []json.RawMessage, page pageRequest) (any, error) {
	byKey := map[[2]string]answeredGroup{}
	for _, data := range answers {
		var d struct {
			Groups []json.RawMessage `json:"groups"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			return nil, unavailable("a ruler's rules do not decode: %v", err)
		}
		for _, raw := range d.Groups {
			var g struct {
				Name           string    `json:"name"`
				File           string    `json:"file"`
				LastEvaluation time.Time `json:"lastEvaluation"`
			}
			if err := json.Unmarshal(raw, &g); err != nil {
				return nil, unavailable("a ruler's rule group does not decode: %v", err)
			}
			key := [2]string{g.File, g.Name}
			if old, ok := byKey[key]; ok && !g.LastEvaluation.After(old.lastEvaluation) {
				continue
			}
			byKey[key] = answeredGroup{name: g.Name, file: g.File, lastEvaluation: g.LastEvaluation, raw: raw}
		}
	}
	groups := make([]answeredGroup, 0, len(byKey))
	for _, g := range byKey {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b answeredGroup) int {
		if c := strings.Compare(a.file, b.file); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	out := struct {
		Groups    []json.RawMessage `json:"groups"`
		NextToken string            `json:"groupNextToken,omitempty"`
	}{Groups: []json.RawMessage{}}
	if page.limit > 0 && page.next != "" {
		at := slices.IndexFunc(groups, func(g answeredGroup) bool { return groupToken(g.file, g.name) == page.next })
		if at < 0 {
			return nil, invalidParam("group_next_token", fmt.Errorf("invalid group_next_token '%v'. were rule groups changed?", page.next))
		}
		groups = groups[at:]
	}
	for _, g := range groups {
		if page.limit > 0 && len(out.Groups) == int(page.limit) {
			out.NextToken = groupToken(g.file, g.name)
			break
		}
		out.Groups = append(out.Groups, g.raw)
	}
	return out, nil
}

// mergeAlerts joins the rulers' active alerts. A group is evaluated by one
// ruler at a time (a ruler starts a group handed to it only once the other
// stopped it), so no alert is listed twice; two alerts with the same labels
// from two rules are two alerts, as in Prometheus.
func mergeAlerts(answers []json.RawMessage) (any, error) {
	out := struct {
		Alerts []json.RawMessage `json:"alerts"`
	}{Alerts: []json.RawMessage{}}
	for _, data := range answers {
		var d struct {
			Alerts []json.RawMessage `json:"alerts"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			return nil, unavailable("a ruler's alerts do not decode: %v", err)
		}
		out.Alerts = append(out.Alerts, d.Alerts...)
	}
	return out, nil
}
