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

// newMetrics registers a logger's metrics: vigil_<component>_logged_<what>_total
// and its failures.
func newMetrics(reg prometheus.Registerer, component, what string) *metrics {
	f := promauto.With(reg)
	return &metrics{
		logged: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_" + component + "_logged_" + what + "_total",
			Help: "Lines (" + what + ") written to the workspaces' logs: those their logging configuration selects.",
		}),
		writeFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_" + component + "_write_failures_total",
			Help: "Log lines (" + what + ") that could not be written.",
		}),
		lookupFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_" + component + "_config_lookup_failures_total",
			Help: "Reads of a workspace's logging configuration that failed; the settings read before stand meanwhile.",
		}),
	}
}
