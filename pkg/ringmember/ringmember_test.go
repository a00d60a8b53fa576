package ringmember

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-metrics/vigil/pkg/ringmember/ringtest"
)

func refuseActive(c kv.Client) kv.Client { return ringtest.RefuseActive(c, "member-1") }

// awaitTerminated waits, at most a minute, for s to stop, and returns its
// failure.
func awaitTerminated(t *testing.T, s services.Service) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.AwaitTerminated(ctx)
	require.NoError(t, ctx.Err(), "still running after a minute")
	return err
}

func memberConfig(unregister bool) Config {
	var c Config
	c.RegisterFlagsWithPrefix("test.", Defaults{Member: "test", ReplicationFactor: 1, NumTokens: 8, UnregisterOnShutdown: unregister}, flag.NewFlagSet("test", flag.PanicOnError))
	c.InstanceID, c.InstanceAddr = "member-1", "127.0.0.1"
	return c
}

// TestActiveMemberLeavesTheRingWhenItsStartFails: a member whose start
// fails after its lifecycler joined (it cannot turn ACTIVE, or never sees
// itself ACTIVE) has, by the time the start returned, stopped its
// lifecycler: no goroutine of it runs, and the instance is gone from the
// ring (or LEAVING, for a member that stays in the ring on shutdown).
func TestActiveMemberLeavesTheRingWhenItsStartFails(t *testing.T) {
	for _, tc := range []struct {
		name       string
		unregister bool
		member     func(kv.Client) kv.Client // the lifecycler's view of the store
		reader     func(kv.Client) kv.Client // the ring client's
		timeout    time.Duration
		failure    string
	}{
		{"cannot turn ACTIVE, unregisters", true, refuseActive, nil, time.Minute, "refuses to make member-1 ACTIVE"},
		{"cannot turn ACTIVE, stays as LEAVING", false, refuseActive, nil, time.Minute, "refuses to make member-1 ACTIVE"},
		{"never sees itself ACTIVE, unregisters", true, nil, ringtest.Blind, 500 * time.Millisecond, "never saw this instance ACTIVE"},
		{"never sees itself ACTIVE, stays as LEAVING", false, nil, ringtest.Blind, 500 * time.Millisecond, "never saw this instance ACTIVE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaks := goleak.IgnoreCurrent() // what runs before the test
			t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
			store := ringtest.NewKV(t)
			view := func(wrap func(kv.Client) kv.Client) kv.Client {
				if wrap == nil {
					return store
				}
				return wrap(store)
			}
			cfg := memberConfig(tc.unregister)
			lc, err := NewLifecycler(cfg, "test", "test-ring", Store{Client: view(tc.member)}, Member{GRPCPort: 9095}, prometheus.NewRegistry(), log.NewNopLogger())
			require.NoError(t, err)
			r, err := NewRing(cfg, "test", "test-ring", Store{Client: view(tc.reader)}, prometheus.NewRegistry(), log.NewNopLogger())
			require.NoError(t, err)
			require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
			defer func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r)) }()

			m := NewActiveMember(lc, r)
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			require.NoError(t, m.StartAsync(ctx))
			require.ErrorContains(t, awaitTerminated(t, m), tc.failure)
			// As the start returned, not some time later:
			require.Equal(t, services.Failed, m.State())
			require.Equal(t, services.Terminated, lc.State(), "the lifecycler is stopped")
			instances := ringtest.Instances(t, store, "test-ring")
			switch {
			case tc.unregister:
				require.NotContains(t, instances, "member-1")
			default:
				require.Equal(t, ring.LEAVING, instances["member-1"])
			}
		})
	}
}
