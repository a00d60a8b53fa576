package alertmanager

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/common/model"
	"golang.org/x/time/rate"
)

// instanceLimits bound what one workspace's Alertmanager holds.
type instanceLimits struct {
	maxAlerts            int // AMP: 1,000 alerts
	maxAlertsSizeBytes   int // AMP: 20 MB alert payload
	maxAggregationGroups int // AMP: 1,000 aggregation groups
	maxSilences          int
	maxSilenceSizeBytes  int
	// notificationRate and notificationBurst bound the notifications the
	// workspace sends, all receivers together (0: no bound).
	notificationRate  float64
	notificationBurst int
}

// alertsLimiter refuses an alert that would take the workspace's alerts
// over their count or size (the alert store's PreStore callback), and
// keeps the sizes that SizeOfAlerts reports.
type alertsLimiter struct {
	limits    func() instanceLimits
	usage     *usage
	workspace string
	logger    *slog.Logger

	mu    sync.Mutex
	sizes map[model.Fingerprint]int
	total int
}

// alertSize is what an alert weighs against the payload limit: its labels,
// annotations and generator URL.
func alertSize(a model.Alert) int {
	n := len(a.GeneratorURL)
	for k, v := range a.Labels {
		n += len(k) + len(v)
	}
	for k, v := range a.Annotations {
		n += len(k) + len(v)
	}
	return n
}

func (l *alertsLimiter) PreStore(a *types.Alert, existing bool) error {
	size := alertSize(a.Alert)
	fp := a.Fingerprint()
	lim := l.limits()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !existing && lim.maxAlerts > 0 && len(l.sizes)+1 > lim.maxAlerts {
		l.refused(1)
		return fmt.Errorf("alerts limit reached: the workspace holds %d alerts, the most allowed (-alertmanager.max-alerts-count)", len(l.sizes))
	}
	if lim.maxAlertsSizeBytes > 0 && l.total-l.sizes[fp]+size > lim.maxAlertsSizeBytes {
		l.refused(1)
		return fmt.Errorf("alerts size limit reached: the workspace's alerts would take %d bytes, more than the %d allowed (-alertmanager.max-alerts-size-bytes)", l.total-l.sizes[fp]+size, lim.maxAlertsSizeBytes)
	}
	return nil
}

func (l *alertsLimiter) refused(n int) {
	if l.usage != nil {
		l.usage.alertsRefused.WithLabelValues(l.workspace).Add(float64(n))
	}
}

func (l *alertsLimiter) PostStore(a *types.Alert, _ bool) {
	size := alertSize(a.Alert)
	fp := a.Fingerprint()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total += size - l.sizes[fp]
	l.sizes[fp] = size
}

func (l *alertsLimiter) PostDelete(a *types.Alert) {
	l.forget(a.Fingerprint())
}

func (l *alertsLimiter) PostGC(fps model.Fingerprints) {
	for _, fp := range fps {
		l.forget(fp)
	}
}

func (l *alertsLimiter) forget(fp model.Fingerprint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total -= l.sizes[fp]
	delete(l.sizes, fp)
}

// admits checks a POST of alerts (the v2 API's JSON) against the limits:
// the alerts it adds and the bytes they take, with those held. A body that
// is not such JSON is left to the API to refuse.
func (l *alertsLimiter) admits(body []byte) error {
	var alerts []struct {
		Labels       model.LabelSet `json:"labels"`
		Annotations  model.LabelSet `json:"annotations"`
		GeneratorURL string         `json:"generatorURL"`
	}
	if json.Unmarshal(body, &alerts) != nil {
		return nil
	}
	lim := l.limits()
	l.mu.Lock()
	defer l.mu.Unlock()
	count, total := len(l.sizes), l.total
	seen := map[model.Fingerprint]bool{}
	for _, a := range alerts {
		fp := a.Labels.Fingerprint()
		size := alertSize(model.Alert{Labels: a.Labels, Annotations: a.Annotations, GeneratorURL: a.GeneratorURL})
		old, held := l.sizes[fp]
		if !held && !seen[fp] {
			count++
		}
		if !seen[fp] {
			total += size - old
		}
		seen[fp] = true
	}
	if lim.maxAlerts > 0 && count > lim.maxAlerts {
		l.refused(len(alerts))
		return fmt.Errorf("alerts limit reached: the workspace would hold %d alerts, more than the %d allowed (-alertmanager.max-alerts-count)", count, lim.maxAlerts)
	}
	if lim.maxAlertsSizeBytes > 0 && total > lim.maxAlertsSizeBytes {
		l.refused(len(alerts))
		return fmt.Errorf("alerts size limit reached: the workspace's alerts would take %d bytes, more than the %d allowed (-alertmanager.max-alerts-size-bytes)", total, lim.maxAlertsSizeBytes)
	}
	return nil
}

// held returns how many alerts the workspace holds and their size.
func (l *alertsLimiter) held() (count, bytes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sizes), l.total
}

// throttled is a receiver integration behind its workspace's notification
// rate limit: a notification over it is not sent, and counted
// (AlertManagerNotificationsThrottled).
type throttled struct {
	inner     notify.Integration
	limiter   *rate.Limiter
	usage     *usage
	workspace string
}

func (t *throttled) Notify(ctx context.Context, alerts ...*types.Alert) (bool, error) {
	if !t.limiter.Allow() {
		t.usage.throttled.WithLabelValues(t.workspace).Inc()
		return false, fmt.Errorf("the workspace's notification rate limit (-alertmanager.notification-rate-limit) was reached: the notification was not sent")
	}
	return t.inner.Notify(ctx, alerts...)
}

// throttle puts every integration behind one limiter, the workspace's
// (rate.Inf when it has none).
func throttle(integrations []notify.Integration, limiter *rate.Limiter, u *usage, ws, receiverName string) []notify.Integration {
	out := make([]notify.Integration, len(integrations))
	for i := range integrations {
		in := integrations[i]
		out[i] = notify.NewIntegration(&throttled{inner: in, limiter: limiter, usage: u, workspace: ws}, &in, in.Name(), in.Index(), receiverName)
	}
	return out
}
