package distributor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	receivedSamples    *prometheus.CounterVec
	receivedExemplars  *prometheus.CounterVec
	receivedMetadata   *prometheus.CounterVec
	receivedRequests   prometheus.Counter
	discardedSamples   *prometheus.CounterVec
	discardedMetadata  *prometheus.CounterVec
	discardedExemplars *prometheus.CounterVec
	panics             prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		receivedSamples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_distributor_received_samples_total",
			Help: "Samples (floats and histograms) in remote-write requests that passed validation, by workspace.",
		}, []string{"workspace"}),
		receivedExemplars: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_distributor_received_exemplars_total",
			Help: "Exemplars in write requests that passed validation, by workspace.",
		}, []string{"workspace"}),
		receivedMetadata: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_distributor_received_metadata_total",
			Help: "Metadata entries in write requests that passed validation, by workspace.",
		}, []string{"workspace"}),
		discardedExemplars: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_distributor_discarded_exemplars_total",
			Help: "Exemplars dropped by the write path (rate limit, validation), by workspace and discard reason.",
		}, []string{"workspace", "reason"}),
		discardedMetadata: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_distributor_discarded_metadata_total",
			Help: "Metadata entries dropped by the write path, by workspace and discard reason.",
		}, []string{"workspace", "reason"}),
		receivedRequests: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_distributor_received_requests_total",
			Help: "Remote-write requests received.",
		}),
		discardedSamples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_distributor_discarded_samples_total",
			Help: "Samples dropped by the write path (rate limit, validation), by workspace and AMP discard reason.",
		}, []string{"workspace", "reason"}),
		panics: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_distributor_push_panics_total",
			Help: "Panics recovered while handling a remote-write request (answered 500) or pushing it to one ingester (a failed replica); the log has the stack.",
		}),
	}
}

// deleteWorkspace drops every metric series of a workspace.
func (m *metrics) deleteWorkspace(workspace string) {
	for _, v := range []*prometheus.CounterVec{m.receivedSamples, m.receivedExemplars, m.receivedMetadata, m.discardedSamples, m.discardedExemplars, m.discardedMetadata} {
		v.DeletePartialMatch(prometheus.Labels{"workspace": workspace})
	}
}
