package ringmember

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-metrics/vigil/pkg/ringmember/ringtest"
)

func memberConfig(unregister bool) Config {
	var c Config
	c.RegisterFlagsWithPrefix("test.", Defaults{Member: "test", ReplicationFactor: 1, NumTokens: 8, UnregisterOnShutdown: unregister}, flag.NewFlagSet("test", flag.PanicOnError))
	c.InstanceID, c.InstanceAddr = "member-1", "127.0.0.1"
	return c
}

// TestActiveMemberLeavesTheRingWhenItsStartFails: a member whose ring never
// shows it ACTIVE fails to start once its context ends, and leaves nothing
// behind: its lifecycler stopped, no goroutine of it running, and the
// instance gone from the ring (or LEAVING, for a member that stays in the
// ring on shutdown).
func TestActiveMemberLeavesTheRingWhenItsStartFails(t *testing.T) {
	for _, unregister := range []bool{true, false} {
		t.Run(map[bool]string{true: "unregisters", false: "stays as LEAVING"}[unregister], func(t *testing.T) {
			t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
			kv := ringtest.NewKV(t)
			cfg := memberConfig(unregister)
			lc, err := NewLifecycler(cfg, "test", "test-ring", Store{Client: kv}, Member{GRPCPort: 9095}, prometheus.NewRegistry(), log.NewNopLogger())
			require.NoError(t, err)
			// A ring client that never sees an update.
			r, err := NewRing(cfg, "test", "test-ring", Store{Client: ringtest.Blind(kv)}, prometheus.NewRegistry(), log.NewNopLogger())
			require.NoError(t, err)
			require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
			defer func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r)) }()

			m := NewActiveMember(lc, r)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			require.NoError(t, m.StartAsync(ctx))
			require.ErrorContains(t, m.AwaitTerminated(context.Background()), "never saw this instance ACTIVE")
			require.Equal(t, services.Failed, m.State())
			require.Equal(t, services.Terminated, lc.State(), "the lifecycler is stopped")
			instances := ringtest.Instances(t, kv, "test-ring")
			if unregister {
				require.NotContains(t, instances, "member-1")
			} else {
				require.Equal(t, ring.LEAVING, instances["member-1"])
			}
		})
	}
}
