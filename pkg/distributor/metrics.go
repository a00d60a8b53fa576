package distributor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	receivedSamples  prometheus.Counter
	receivedRequests prometheus.Counter
	discardedSamples *prometheus.CounterVec
	rejectedRequests *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		receivedSamples: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_distributor_received_samples_total",
			Help: "Samples (floats and histograms) in remote-write requests that passed validation.",
		}),
		receivedRequests: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_distributor_received_requests_total",
			Help: "Remote-write requests received.",
		}),
		discardedSamples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_distributor_discarded_samples_total",
			Help: "Samples dropped by validation, by AMP discard reason.",
		}, []string{"reason"}),
		rejectedRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_distributor_rejected_requests_total",
			Help: "Remote-write requests rejected before reaching ingesters, by reason.",
		}, []string{"reason"}),
	}
}
