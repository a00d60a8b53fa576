//go:build e2e

package integration

import (
	"testing"
	"time"
)

// TestClusterGrafanaReadEndpoints: on three ingesters in three zones, the
// metadata and exemplars of a push reach every replica, and the querier
// reads them back from a quorum, also with one ingester down.
func TestClusterGrafanaReadEndpoints(t *testing.T) {
	c := startCluster(t)
	ws := createWorkspace(t, c.dist.base(), "cluster-grafana")
	now := time.Now().Truncate(time.Millisecond)
	grafanaWrite(t, c.dist.base(), ws, now)
	checkGrafanaReads(t, promClient(t, workspaceURL(c.quer.base(), ws)), now)
	victim := c.ingesters[1]
	victim.kill()
	checkGrafanaReads(t, promClient(t, workspaceURL(c.quer.base(), ws)), now)
	victim.start()
	waitReady(t, victim.base())
	c.stopAll()
}
