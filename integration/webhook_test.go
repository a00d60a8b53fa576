package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
)

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
