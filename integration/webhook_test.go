package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// webhookConfig is an Alertmanager configuration routing every alert, by
// alertname, to the webhook at url, resolved ones too.
func webhookConfig(url string) string {
	return fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: true
`, url)
}

// asDefinition is an AMP alert manager definition holding the
// Alertmanager configuration cfg.
func asDefinition(cfg string) string {
	return "alertmanager_config: |\n  " + strings.ReplaceAll(strings.TrimRight(cfg, "\n"), "\n", "\n  ") + "\n"
}

// webhook records the notifications an Alertmanager sends it.
type webhook struct {
	mu   sync.Mutex
	msgs []webhookMessage
}

type webhookMessage struct {
	Receiver    string            `json:"receiver"`
	GroupLabels map[string]string `json:"groupLabels"`
	Status      string            `json:"status"`
	Alerts      []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m webhookMessage
	body, _ := io.ReadAll(r.Body)
	if json.Unmarshal(body, &m) == nil {
		h.mu.Lock()
		h.msgs = append(h.msgs, m)
		h.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
}

// messages returns the notifications received so far.
func (h *webhook) messages() []webhookMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]webhookMessage(nil), h.msgs...)
}

// got tells whether a notification of the given status came for alertname.
func (h *webhook) got(status, alertname string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		for _, a := range m.Alerts {
			if a.Status == status && a.Labels["alertname"] == alertname {
				return true
			}
		}
	}
	return false
}

// count is how many notifications of the given status came for alertname.
func (h *webhook) count(status, alertname string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		for _, a := range m.Alerts {
			if a.Status == status && a.Labels["alertname"] == alertname {
				n++
			}
		}
	}
	return n
}
