package alertmanager

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	dto "github.com/prometheus/client_model/go"
)

// usage holds AMP's per-workspace alert manager usage metrics
// (guide L3848): AlertManagerNotificationsFailed and
// AlertManagerNotificationsThrottled as counters (AlertManagerAlertsReceived
// is the API's); ActiveAlerts,
// SuppressedAlerts, UnprocessedAlerts, AllAlerts and SizeOfAlerts as
// gauges read from each workspace's Alertmanager when scraped. Each
// replica of a workspace reports what it holds.
type usage struct {
	throttled *prometheus.CounterVec
	// alertsRefused counts alerts refused by the alerts count and size
	// limits.
	alertsRefused *prometheus.CounterVec

	active, suppressed, unprocessed, all, size, failed, position *prometheus.Desc
}

func newUsage(reg prometheus.Registerer) *usage {
	f := promauto.With(reg)
	ws := []string{"workspace"}
	return &usage{
		throttled: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alertmanager_notifications_throttled_total",
			Help: "Notifications not sent because the workspace's notification rate limit was reached (AMP's AlertManagerNotificationsThrottled).",
		}, ws),
		alertsRefused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alertmanager_alerts_refused_total",
			Help: "Alerts refused because the workspace's alert manager held the most alerts, or bytes of alerts, allowed.",
		}, ws),
		active:      prometheus.NewDesc("vigil_alertmanager_active_alerts", "Alerts active in the workspace's alert manager (AMP's ActiveAlerts), on this replica.", ws, nil),
		suppressed:  prometheus.NewDesc("vigil_alertmanager_suppressed_alerts", "Alerts silenced or inhibited in the workspace's alert manager (AMP's SuppressedAlerts), on this replica.", ws, nil),
		unprocessed: prometheus.NewDesc("vigil_alertmanager_unprocessed_alerts", "Alerts received but not yet in an aggregation group's evaluation (AMP's UnprocessedAlerts), on this replica.", ws, nil),
		all:         prometheus.NewDesc("vigil_alertmanager_all_alerts", "Alerts in every state held by the workspace's alert manager (AMP's AllAlerts), on this replica.", ws, nil),
		size:        prometheus.NewDesc("vigil_alertmanager_alerts_size_bytes", "Size of the alerts the workspace's alert manager holds (AMP's SizeOfAlerts), on this replica.", ws, nil),
		position:    prometheus.NewDesc("vigil_alertmanager_replica_position", "This replica's place among the workspace's healthy replicas: the first (0) notifies at once, each next one after one more -alertmanager.peer-timeout, if the notification log does not say it was sent.", ws, nil),
		failed:      prometheus.NewDesc("vigil_alertmanager_notifications_failed_total", "Notifications that failed (AMP's AlertManagerNotificationsFailed), sent by this replica.", ws, nil),
	}
}

// describe and collect serve the gauges of the instances running.
func (u *usage) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{u.active, u.suppressed, u.unprocessed, u.all, u.size, u.failed, u.position} {
		ch <- d
	}
}

func (u *usage) collect(ch chan<- prometheus.Metric, ws string, in *instance) {
	ch <- prometheus.MustNewConstMetric(u.position, prometheus.GaugeValue, float64(in.opts.peer.Position()), ws)
	count, bytes := in.limiter.held()
	ch <- prometheus.MustNewConstMetric(u.all, prometheus.GaugeValue, float64(count), ws)
	ch <- prometheus.MustNewConstMetric(u.size, prometheus.GaugeValue, float64(bytes), ws)
	states := map[string]float64{}
	var failed float64
	families, _ := in.reg.Gather()
	for _, mf := range families {
		switch mf.GetName() {
		case "alertmanager_alerts":
			for _, m := range mf.GetMetric() {
				states[label(m, "state")] += m.GetGauge().GetValue()
			}
		case "alertmanager_notifications_failed_total":
			for _, m := range mf.GetMetric() {
				failed += m.GetCounter().GetValue()
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(u.active, prometheus.GaugeValue, states["active"], ws)
	ch <- prometheus.MustNewConstMetric(u.suppressed, prometheus.GaugeValue, states["suppressed"], ws)
	ch <- prometheus.MustNewConstMetric(u.unprocessed, prometheus.GaugeValue, states["unprocessed"], ws)
	ch <- prometheus.MustNewConstMetric(u.failed, prometheus.CounterValue, failed, ws)
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
