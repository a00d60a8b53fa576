package frontend

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the query-frontend's metrics.
type metrics struct {
	queries       *prometheus.CounterVec
	legs          prometheus.Counter
	queueLength   *prometheus.GaugeVec
	queueDuration prometheus.Histogram
	queriers      prometheus.Gauge
	dropped       prometheus.Counter
	retries       prometheus.Counter
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		queries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_query_frontend_queries_total",
			Help: "Requests the query-frontend received, by kind: query_range (split), query_range_unsplit, other.",
		}, []string{"op"}),
		legs: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_query_frontend_split_queries_total",
			Help: "Legs the split range queries were cut into.",
		}),
		queueLength: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_query_frontend_queue_length",
			Help: "Requests queued for a querier, by workspace.",
		}, []string{"workspace"}),
		queueDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                        "vigil_query_frontend_queue_duration_seconds",
			Help:                        "Time requests waited in the queue before a querier took them.",
			Buckets:                     prometheus.ExponentialBuckets(0.001, 4, 9),
			NativeHistogramBucketFactor: 1.1,
		}),
		queriers: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_query_frontend_connected_queriers",
			Help: "Queriers with at least one stream open to this query-frontend.",
		}),
		dropped: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_query_frontend_dropped_requests_total",
			Help: "Queued requests dropped because their caller went away.",
		}),
		retries: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_query_frontend_retries_total",
			Help: "Requests sent again after a 5xx answer or a lost querier (-query-frontend.max-retries).",
		}),
		cacheHits: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_query_frontend_results_cache_hits_total",
			Help: "Range query legs answered from the results cache.",
		}),
		cacheMisses: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_query_frontend_results_cache_misses_total",
			Help: "Cacheable range query legs the results cache did not hold.",
		}),
	}
}
