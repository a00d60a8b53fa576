// Package promapi builds Prometheus's own HTTP API (web/api/v1) for the
// parts of Vigil that serve some of its endpoints: the querier its query
// endpoints, the ruler its rules and alerts. Each caller registers the API on
// a router and serves only the paths it answers.
package promapi

import (
	"context"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/notifications"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/vigil-metrics/vigil/pkg/logging"
)

// Options are what the API serves from; nil members serve nothing.
type Options struct {
	Engine    promql.QueryEngine
	Queryable storage.SampleAndChunkQueryable
	Exemplars storage.ExemplarQueryable
	Targets   func(context.Context) v1.TargetRetriever
	Rules     func(context.Context) v1.RulesRetriever
	// OverrideErrorCode changes the status of some errors (nil: Prometheus's).
	OverrideErrorCode v1.OverrideErrorCode
	LookbackDelta     time.Duration
	Timeout           time.Duration
	// Registerer takes the API's own metrics (already prefixed).
	Registerer prometheus.Registerer
	Logger     log.Logger
}

// New returns Prometheus's API over o: no admin, remote read or write, OTLP
// or configuration endpoints do anything.
func New(o Options) *v1.API {
	return v1.NewAPI(
		o.Engine, o.Queryable, nil, o.Exemplars,
		nil, o.Targets, nil,
		func() config.Config { return config.DefaultConfig },
		map[string]string{},
		v1.GlobalURLOptions{},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		nil, "", false, false, 0,
		logging.Slog(o.Logger),
		o.Rules,
		0, 1, 1<<20,
		false,
		nil,
		nil,
		&v1.PrometheusVersion{},
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		prometheus.NewRegistry(),
		o.Registerer,
		nil,
		false, nil,
		false, false, false,
		o.LookbackDelta,
		false, false,
		o.OverrideErrorCode, nil,
		v1.OpenAPIOptions{},
		nil,
		false,
		o.Timeout,
	)
}
