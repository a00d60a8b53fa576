package vigil

import (
	"context"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/stretchr/testify/require"
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
