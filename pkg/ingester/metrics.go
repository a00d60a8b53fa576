package ingester

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	openTSDBs         prometheus.Gauge
	ingestedSamples   prometheus.Counter
	ingestedHistogram prometheus.Counter
	discardedSamples  *prometheus.CounterVec
	discardedMetadata *prometheus.CounterVec
	ingestedExemplars prometheus.Counter
	discardedExemplar *prometheus.CounterVec
	openFailures      *prometheus.CounterVec
	walSyncs          prometheus.Counter
	walSyncDuration   prometheus.Histogram
	shippedBlocks     prometheus.Counter
	shipFailures      prometheus.Counter
	deletedWorkspaces prometheus.Counter
	seriesCapacity    *prometheus.GaugeVec
	seriesBaseline    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, series, inflight func() float64) *metrics {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_ingester_memory_series",
		Help: "Series held in memory by the open TSDBs of every workspace (what -ingester.instance-limits.max-series bounds).",
	}, series)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_ingester_inflight_push_requests",
		Help: "Pushes being appended (what -ingester.instance-limits.max-inflight-push-requests bounds).",
	}, inflight)
	return &metrics{
		openTSDBs: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_ingester_open_tsdbs",
			Help: "Number of workspace TSDBs open on this ingester.",
		}),
		ingestedSamples: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ingester_ingested_samples_total",
			Help: "Float samples appended to workspace TSDBs.",
		}),
		ingestedHistogram: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ingester_ingested_histograms_total",
			Help: "Native histogram samples appended to workspace TSDBs.",
		}),
		discardedSamples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingester_discarded_samples_total",
			Help: "Samples the TSDB rejected, by workspace and AMP discard reason.",
		}, []string{"workspace", "reason"}),
		discardedMetadata: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingester_discarded_metadata_total",
			Help: "Metric metadata entries dropped over the workspace's metadata limits, by workspace and AMP discard reason.",
		}, []string{"workspace", "reason"}),
		ingestedExemplars: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ingester_ingested_exemplars_total",
			Help: "Exemplars appended to workspace TSDBs' exemplar storage.",
		}),
		discardedExemplar: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingester_discarded_exemplars_total",
			Help: "Exemplars the TSDB refused (out of order, duplicate, labels too long, none of the sample's series stored), by workspace.",
		}, []string{"workspace"}),
		openFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingester_tsdb_open_failures_total",
			Help: "Workspace TSDBs that failed to open (WAL replay included), by workspace.",
		}, []string{"workspace"}),
		walSyncs: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ingester_wal_syncs_total",
			Help: "WAL fsyncs made for -ingester.tsdb.wal-sync=always; concurrent pushes share one.",
		}),
		walSyncDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_ingester_wal_sync_duration_seconds",
			Help:    "Time a WAL fsync round took (-ingester.tsdb.wal-sync=always).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		shippedBlocks: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ingester_shipper_uploads_total",
			Help: "Blocks uploaded to object storage.",
		}),
		shipFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ingester_shipper_upload_failures_total",
			Help: "Block uploads that failed; they are retried at the next ship.",
		}),
		deletedWorkspaces: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ingester_deleted_workspaces_total",
			Help: "Local TSDBs removed because their workspace was deleted.",
		}),
		seriesCapacity: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_ingester_series_capacity",
			Help: "Series a workspace may have on this ingester: its share of the adaptive capacity (twice the baseline, at least the floor, at most the quota); absent without a limit.",
		}, []string{"workspace"}),
		seriesBaseline: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_ingester_series_baseline",
			Help: "Average series of a workspace on this ingester over the last 30 minutes, sampled every 15 seconds: half the capacity it grants.",
		}, []string{"workspace"}),
	}
}

// registerGuardMetrics reports the memory guard's readings.
func registerGuardMetrics(reg prometheus.Registerer, guard *memGuard) {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_ingester_live_heap_bytes",
		Help: "Live heap found by the last garbage collection, as the memory guard last read it (every second); 0 without a memory limit.",
	}, guard.heapBytes)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_ingester_new_series_live_heap_limit_bytes",
		Help: "Live heap from which new series are refused: -ingester.instance-limits.memory-limit-new-series-ratio of the memory limit; 0: none.",
	}, guard.thresholdBytes)
}

// activeSeries reports the in-memory series of each open workspace TSDB,
// the ingester's share of AMP's ActiveSeries usage metric. A workspace whose
// TSDB is closed (idle, or deleted) has no series reported.
type activeSeries struct {
	desc *prometheus.Desc
	dbs  func() map[string]*userDB
}

func (c activeSeries) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c activeSeries) Collect(ch chan<- prometheus.Metric) {
	for id, u := range c.dbs() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(u.db.Head().NumSeries()), id)
	}
}
