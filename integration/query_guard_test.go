package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
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
	// A sum of 3,000 rates (87 KB) has no parentheses to speak of, but a
	// syntax tree 3,000 deep, whose evaluation takes minutes, and its
	// operators take the parser seconds: refused before it is parsed.
	code, body = post("/api/v1/query", url.Values{"query": {"sum(" + strings.TrimSuffix(strings.Repeat(`rate({__name__=~".+"}[5m]) + `, 3000), " + ") + ")"}})
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Contains(t, body, "has more than 1024 binary operators")
	require.Contains(t, body, "err-vigil-query-expression-too-deep")
	// 200 of them: quick to parse, refused before they are evaluated.
	code, body = post("/api/v1/query", url.Values{"query": {"sum(" + strings.TrimSuffix(strings.Repeat(`rate({__name__=~".+"}[5m]) + `, 200), " + ") + ")"}})
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Contains(t, body, "its syntax tree is deeper than 128 levels")
	// A regular expression of 1 MB (within AMP's request size).
	code, body = post("/api/v1/query", url.Values{"query": {`up{job=~"` + strings.Repeat("x.", 520_000) + `"}`}})
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Contains(t, body, "err-vigil-query-regexp-too-large")
	// The same regular expression as a series selector of the series call.
	code, body = post("/api/v1/series", url.Values{"match[]": {`up{job=~"` + strings.Repeat("x.", 520_000) + `"}`}})
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Contains(t, body, "err-vigil-query-regexp-too-large")
	// A megabyte of "up and up and ...", which Prometheus's parser takes
	// five minutes over: refused before it is parsed.
	code, body = post("/api/v1/query", url.Values{"query": {strings.Repeat("up and ", 140_000) + "up"}})
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Contains(t, body, "binary operators")

	val, _, _, err := promClient(t, workspaceURL(v.BaseURL(), ws)).Query(context.Background(), `sum by (job) (up)`, now)
	require.NoError(t, err)
	require.Len(t, val.(model.Vector), 1)
}

// TestSamplesProcessedThresholds: AMP's QSP thresholds, as the request's
// parameters and as the workspace's limits: above the warning threshold the
// answer carries a warning, above the error threshold the query is refused
// with 422; both compare with the totalQueryableSamples of stats=all.
func TestSamplesProcessedThresholds(t *testing.T) {
	v, overrides := startWithOverrides(t)
	ws := createWorkspace(t, v.BaseURL(), "qsp")
	now := time.Now().Truncate(time.Minute)
	req := &prompb.WriteRequest{}
	for i := 0; i < 10; i++ {
		var samples []prompb.Sample
		for ts := now.Add(-50 * time.Minute); !ts.After(now); ts = ts.Add(15 * time.Second) {
			samples = append(samples, prompb.Sample{Timestamp: ts.UnixMilli(), Value: float64(ts.Unix())})
		}
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "requests_total"}, {Name: "pod", Value: fmt.Sprint(i)}}, Samples: samples})
	}
	_, err := remoteWriter(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write").Store(context.Background(), encode(t, req), 0)
	require.NoError(t, err)

	query := func(extra url.Values) (int, queryAnswer) {
		form := url.Values{"query": {`sum(rate(requests_total[5m]))`}, "start": {fmt.Sprint(now.Add(-40 * time.Minute).Unix())}, "end": {fmt.Sprint(now.Unix())}, "step": {"60"}, "stats": {"all"}}
		for k, vs := range extra {
			form[k] = vs
		}
		resp, err := http.PostForm(workspaceURL(v.BaseURL(), ws)+"/api/v1/query_range", form)
		require.NoError(t, err)
		defer resp.Body.Close()
		var a queryAnswer
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&a))
		return resp.StatusCode, a
	}
	code, a := query(nil)
	require.Equal(t, http.StatusOK, code, a.Error)
	total := a.Data.Stats.Samples.TotalQueryableSamples
	// 41 steps, each reading the 20 samples of its 5 minutes (open at the
	// start, as Prometheus 3 reads ranges) of 10 series.
	require.Equal(t, int64(41*20*10), total)
	require.Empty(t, a.Warnings)

	th := func(warn, fail int64) url.Values {
		v := url.Values{}
		if warn > 0 {
			v.Set("max_samples_processed_warning_threshold", fmt.Sprint(warn))
		}
		if fail > 0 {
			v.Set("max_samples_processed_error_threshold", fmt.Sprint(fail))
		}
		return v
	}
	code, a = query(th(total-1, 0))
	require.Equal(t, http.StatusOK, code, a.Error)
	require.Equal(t, []string{fmt.Sprintf("the query processed %d samples, more than its warning threshold of %d (max_samples_processed_warning_threshold)", total, total-1)}, a.Warnings)
	code, a = query(th(total, total))
	require.Equal(t, http.StatusOK, code, a.Error)
	require.Empty(t, a.Warnings)
	code, a = query(th(0, total-1))
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, a.Error, "err-vigil-query-samples-processed")
	code, a = query(url.Values{"max_samples_processed_error_threshold": {"lots"}})
	require.Equal(t, http.StatusBadRequest, code)

	// The workspace's own threshold; a request may lower it, not raise it.
	require.NoError(t, os.WriteFile(overrides, fmt.Appendf(nil, "overrides:\n  %s:\n    max_samples_processed_error_threshold: %d\n", ws, total-1), 0o644))
	require.Eventually(t, func() bool { code, _ := query(nil); return code == http.StatusUnprocessableEntity }, 10*time.Second, 100*time.Millisecond)
	code, _ = query(th(0, total*2))
	require.Equal(t, http.StatusUnprocessableEntity, code)
}

// queryAnswer is the part of Prometheus's query answer the tests read.
type queryAnswer struct {
	Status   string   `json:"status"`
	Error    string   `json:"error"`
	Warnings []string `json:"warnings"`
	Data     struct {
		Stats struct {
			Samples struct {
				TotalQueryableSamples int64 `json:"totalQueryableSamples"`
			} `json:"samples"`
		} `json:"stats"`
	} `json:"data"`
}
