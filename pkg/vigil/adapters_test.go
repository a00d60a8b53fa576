package vigil

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/controlplane"
)

// membersRing is a ring of n healthy instances, or an error.
type membersRing struct {
	ring.ReadRing
	n   int
	err error
}

func (r *membersRing) GetAllHealthy(ring.Operation) (ring.ReplicationSet, error) {
	if r.err != nil {
		return ring.ReplicationSet{}, r.err
	}
	return ring.ReplicationSet{Instances: make([]ring.InstanceDesc, r.n)}, nil
}

// TestRingMembersCountsHealthyDistributors: the distributors sharing a
// workspace's ingestion rate are the healthy members of their ring, read
// at most once a second, and at least this one (alone, or the ring
// unreadable).
func TestRingMembersCountsHealthyDistributors(t *testing.T) {
	r := &membersRing{n: 3}
	m := newRingMembers(r)
	require.Equal(t, 3, m.HealthyDistributors())
	r.n = 2
	require.Equal(t, 3, m.HealthyDistributors(), "read at most once a second")
	m.readAt = m.readAt.Add(-time.Second)
	require.Equal(t, 2, m.HealthyDistributors())
	r.n, m.readAt = 0, time.Time{}
	require.Equal(t, 1, m.HealthyDistributors(), "this one, not yet in the ring")
	r.err, m.readAt = context.DeadlineExceeded, time.Time{}
	require.Equal(t, 1, m.HealthyDistributors(), "an unreadable ring: this one alone")
}

// configurations is a control plane's workspace configurations, or an
// error.
type configurations struct {
	offset map[string]int
	err    error
}

func (c *configurations) Configuration(_ context.Context, id string) (*controlplane.Configuration, error) {
	if c.err != nil {
		return nil, c.err
	}
	cfg := &controlplane.Configuration{}
	if secs, ok := c.offset[id]; ok {
		cfg.RuleQueryOffsetInSeconds = &secs
	}
	return cfg, nil
}

type defaultOffset time.Duration

func (d defaultOffset) RuleQueryOffset(string) time.Duration { return time.Duration(d) }

// TestWorkspaceRuleQueryOffset: a workspace's configured offset wins over
// the limits'; while the configuration cannot be read, the offset read
// last stands; a workspace gone or without one has the limits'.
func TestWorkspaceRuleQueryOffset(t *testing.T) {
	store := &configurations{offset: map[string]int{"ws-1": 60}}
	w := &workspaceRuleQueryOffset{store: store, limits: defaultOffset(5 * time.Second), last: map[string]int{}}
	require.Equal(t, time.Minute, w.RuleQueryOffset("ws-1"))
	require.Equal(t, 5*time.Second, w.RuleQueryOffset("ws-2"), "no offset of its own")
	store.err = errors.New("object storage unreachable")
	require.Equal(t, time.Minute, w.RuleQueryOffset("ws-1"), "the offset read last stands")
	require.Equal(t, 5*time.Second, w.RuleQueryOffset("ws-2"))
	store.err = apierror.New(apierror.NotFound, apierror.IDWorkspaceNotFound, "gone")
	require.Equal(t, 5*time.Second, w.RuleQueryOffset("ws-1"), "a workspace gone")
	require.Empty(t, w.last)
	store.err = nil
	delete(store.offset, "ws-1")
	require.Equal(t, 5*time.Second, w.RuleQueryOffset("ws-1"), "unset")
}
