package ruler

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/go-kit/log/level"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/rules"

	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// SendAlertsTo makes the workspaces' alerts go to h, the Alertmanager v2
// API of every workspace (Vigil's alertmanager), in this process: unless
// -ruler.alertmanager-url names another Alertmanager. Call it before the
// ruler starts.
func (rl *Ruler) SendAlertsTo(h http.Handler) {
	rl.alerts = h
	if rl.cfg.AlertmanagerURL == "" && h != nil {
		rl.options.notify = rl.notifier
	}
}

// SetVendedLogs makes the workspaces' WARN and ERROR events (rule
// evaluation failures among them) also go to v. Call it before the ruler
// starts.
func (rl *Ruler) SetVendedLogs(v VendedLogs) { rl.options.vended = v }

// inProcessHost names the in-process Alertmanager in the notifier's
// configuration; its requests never leave the process.
const inProcessHost = "alertmanager.in-process"

// notifier returns the function that sends a workspace's alerts to its
// Alertmanager, through Prometheus's notifier (queue, batches, retries):
// the one -ruler.alertmanager-url names, else the one of SendAlertsTo.
func (rl *Ruler) notifier(workspace string) (rules.NotifyFunc, func()) {
	opts := &notifier.Options{QueueCapacity: 10_000}
	u := &url.URL{Scheme: "http", Host: inProcessHost, Path: "/"}
	if rl.cfg.AlertmanagerURL != "" {
		var err error
		if u, err = alertmanagerURL(rl.cfg.AlertmanagerURL, workspace); err != nil {
			level.Warn(rl.logger).Log("msg", "no Alertmanager for the workspace", "workspace", workspace, "err", err)
			return nil, func() {}
		}
	} else {
		opts.Do = inProcess(rl.alerts, workspace)
	}
	n := notifier.NewManager(opts, model.UTF8Validation, slog.New(slog.DiscardHandler))
	am := config.DefaultAlertmanagerConfig
	am.Scheme, am.PathPrefix = u.Scheme, u.Path
	if err := n.ApplyConfig(&config.Config{AlertingConfig: config.AlertingConfig{AlertmanagerConfigs: config.AlertmanagerConfigs{&am}}}); err != nil {
		level.Warn(rl.logger).Log("msg", "no Alertmanager for the workspace", "workspace", workspace, "err", err)
		return nil, func() {}
	}
	targets := make(chan map[string][]*targetgroup.Group, 1)
	targets <- map[string][]*targetgroup.Group{"config-0": {{Source: "ruler", Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}}}}}
	go n.Run(targets)
	return rules.SendAlerts(n, ""), n.Stop
}

// inProcess is the notifier's Do that serves its requests with h, for the
// workspace, in this process.
func inProcess(h http.Handler, workspace string) func(ctx context.Context, _ *http.Client, req *http.Request) (*http.Response, error) {
	return func(ctx context.Context, _ *http.Client, req *http.Request) (*http.Response, error) {
		w := &bufferedResponse{header: http.Header{}, code: http.StatusOK}
		h.ServeHTTP(w, req.WithContext(tenant.WithID(ctx, workspace)))
		return &http.Response{StatusCode: w.code, Status: http.StatusText(w.code), Header: w.header,
			Body: io.NopCloser(&w.body), Request: req}, nil
	}
}

// bufferedResponse keeps an answer in memory.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) WriteHeader(code int)        { b.code = code }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
