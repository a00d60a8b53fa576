package distributor

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"
)

// haStatus is one cluster's election as the status page shows it.
type haStatus struct {
	Workspace       string    `json:"workspace"`
	Cluster         string    `json:"cluster"`
	ElectedReplica  string    `json:"elected_replica"`
	ElectedAt       time.Time `json:"elected_at"`
	LastHeard       time.Time `json:"last_heard"`
	FailoverAllowed time.Time `json:"failover_after"`
}

// ServeHTTP serves the elected replica of every cluster this distributor
// knows of, as JSON (the operators' page at /distributor/ha-tracker of the
// admin listener).
func (t *HATracker) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	var out []haStatus
	t.mu.Lock()
	for ws, clusters := range t.clusters {
		for cluster, e := range clusters {
			if !e.desc.live() {
				continue
			}
			heard := e.lastHeard()
			out = append(out, haStatus{
				Workspace: ws, Cluster: cluster, ElectedReplica: e.desc.Replica,
				ElectedAt: time.UnixMilli(e.desc.ElectedAt).UTC(), LastHeard: heard.UTC(),
				FailoverAllowed: heard.Add(t.cfg.FailoverTimeout).UTC(),
			})
		}
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Workspace != out[j].Workspace {
			return out[i].Workspace < out[j].Workspace
		}
		return out[i].Cluster < out[j].Cluster
	})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"clusters": out})
}
