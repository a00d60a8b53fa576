package querylog

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the query logger's metrics.
type metrics struct {
	logged         prometheus.Counter
	writeFailures  prometheus.Counter
	lookupFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		logged: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_querylog_logged_queries_total",
			Help: "Queries written to a workspace's query log: those processing more samples than the qspThreshold of the workspace's query logging configuration.",
		}),
		writeFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_querylog_write_failures_total",
			Help: "Query log lines that could not be written.",
		}),
		lookupFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_querylog_config_lookup_failures_total",
			Help: "Reads of a workspace's query logging configuration that failed; the settings read before stand meanwhile.",
		}),
	}
}
