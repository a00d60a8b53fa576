package integration

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestHostileQueriesAreRefusedBeforeParsing: through the public port, an
// expression of 100,000 nested parentheses (which Prometheus's parser takes
// tens of seconds over) and a 33-day range are refused with their IDs, and
// an honest query still answers.
func TestHostileQueriesAreRefusedBeforeParsing(t *testing.T) {
	v := startMonolith(t, t.TempDir())
	ws := createWorkspace(t, v.BaseURL(), "guard")
	now := time.Now().Truncate(time.Second)
	_, err := remoteWriter(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write").Store(context.Background(), encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "api"}}, Samples: []prompb.Sample{{Timestamp: now.UnixMilli(), Value: 1}},
	}}}), 0)
	require.NoError(t, err)

	post := func(path string, form url.Values) (int, string) {
		resp, err := http.PostForm(workspaceURL(v.BaseURL(), ws)+path, form)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deep := strings.Repeat("(", 100_000) + "1" + strings.Repeat(")", 100_000)
	code, body := post("/api/v1/query", url.Values{"query": {deep}})
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Contains(t, body, "err-vigil-query-expression-too-deep")
	code, body = post("/api/v1/query_range", url.Values{"query": {"up"}, "start": {"0"}, "end": {"2851200"}, "step": {"3600"}})
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Contains(t, body, "the query time range exceeds the limit (query length: 33d, limit: 32d)")

	val, _, _, err := promClient(t, workspaceURL(v.BaseURL(), ws)).Query(context.Background(), `sum by (job) (up)`, now)
	require.NoError(t, err)
	require.Len(t, val.(model.Vector), 1)
}
