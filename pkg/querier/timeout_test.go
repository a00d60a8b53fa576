package querier

import (
	"net/http"
	"testing"

	"github.com/prometheus/prometheus/promql"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"
)

// TestTimeoutIs422: a query that runs out of time is answered 422, as AMP
// does (Prometheus answers 503).
func TestTimeoutIs422(t *testing.T) {
	code, ok := statusOfCause(v1.ErrorTimeout, promql.ErrQueryTimeout("query timed out in expression evaluation"))
	require.True(t, ok)
	require.Equal(t, http.StatusUnprocessableEntity, code)
}
