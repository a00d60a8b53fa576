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
		if !rt.Control() {
			continue
		}
		routed[rt.Operation] = true
		require.Contains(t, handlers, rt.Operation, "route %s has no handler", rt.Pattern)
	}
	for op := range handlers {
		require.True(t, routed[op], "handler of %s has no route", op)
	}
}
