package vigil

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/api"
	"github.com/vigil-metrics/vigil/pkg/auth"
	"github.com/vigil-metrics/vigil/pkg/controlplane"
)

// TestEveryControlRouteHasItsHandler: the route table and the control
// plane's handlers name the same operations, each bound once: a route
// without a handler would answer 404, a handler without a route would
// never be reached.
func TestEveryControlRouteHasItsHandler(t *testing.T) {
	handlers := (&controlplane.Handler{}).Operations()
	routed := map[auth.Operation]bool{}
	for _, rt := range api.Routes() {
		if !rt.Control() || rt.RulesConfig() {
			continue // the rules configuration API has one handler
		}
		routed[rt.Operation] = true
		require.Contains(t, handlers, rt.Operation, "route %s has no handler", rt.Pattern)
	}
	for op := range handlers {
		require.True(t, routed[op], "handler of %s has no route", op)
	}
}

// TestOnlyRequestedDistributorsJoinTheRing: the distributor a ruler runs
// for its own pushes is not counted among the distributors that share each
// workspace's ingestion rate.
func TestOnlyRequestedDistributorsJoinTheRing(t *testing.T) {
	for _, tc := range []struct {
		targets []string
		joins   bool
	}{
		{[]string{All}, true},
		{[]string{Distributor, API}, true},
		{[]string{Ruler}, false},
		{[]string{Querier}, false},
	} {
		v := &Vigil{}
		v.Cfg.Target = tc.targets
		require.Equal(t, tc.joins, v.runs(Distributor), "%v", tc.targets)
	}
}
