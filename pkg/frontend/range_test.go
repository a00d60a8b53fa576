package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Three days of data: three series scraped every 15 s.
var (
	dataFrom = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	dataTo   = dataFrom.Add(3 * 24 * time.Hour)
)

func rangeForm(query string, start, end time.Time, step string) url.Values {
	return url.Values{"query": {query}, "start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {step}}
}

// TestSplitAnswersAsUnsplit: a range query split into day legs answers
// byte for byte what Prometheus answers the whole query.
func TestSplitAnswersAsUnsplit(t *testing.T) {
	prom := promAPI(storageWith(t, "requests_total", 3, dataFrom, dataTo, 15*time.Second))
	b := &backend{handlers: map[string]http.Handler{"ws-a": prom}}
	cfg := defaultConfig()
	cfg.ResultsCache.Backend = BackendNone
	f, _ := newTestFrontend(t, cfg, testLimits{}, b, dataTo.Add(time.Hour))
	start, end := dataFrom.Add(3*time.Hour+7*time.Minute), dataTo.Add(-5*time.Hour)
	for _, tc := range []struct{ query, step string }{
		{`requests_total`, "60"},
		{`rate(requests_total[5m])`, "420"},
		{`sum by (pod) (increase(requests_total[1h]))`, "1h"},
		{`max_over_time(requests_total[10m:1m])`, "97"},
		{`requests_total > 500`, "3600"},
		{`absent(nothing)`, "600"},
		{`nothing`, "600"},
	} {
		t.Run(tc.query+" step "+tc.step, func(t *testing.T) {
			form := rangeForm(tc.query, start, end, tc.step)
			calls := b.calls.Load()
			code, got := get(t, f.Handler(), "ws-a", rangePath, form)
			require.Equal(t, http.StatusOK, code, got)
			require.Greater(t, b.calls.Load()-calls, int64(1), "split")
			wantCode, want := direct(t, prom, rangePath, form)
			require.Equal(t, wantCode, code)
			require.Equal(t, want, got)
		})
	}
}

// TestSplitStatsAddUp: with stats=all the legs' sample counts add up to
// the unsplit query's, and to a count by hand.
func TestSplitStatsAddUp(t *testing.T) {
	prom := promAPI(storageWith(t, "requests_total", 3, dataFrom, dataTo, 15*time.Second))
	b := &backend{handlers: map[string]http.Handler{"ws-a": prom}}
	cfg := defaultConfig()
	f, _ := newTestFrontend(t, cfg, testLimits{}, b, dataTo.Add(time.Hour))
	start := dataFrom.Add(20 * time.Hour)
	end := start.Add(30 * time.Hour) // two legs: 4 h, then 26 h (two more days)
	form := rangeForm(`rate(requests_total[5m])`, start, end, "600")
	form.Set("stats", "all")
	type stats struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
			Stats  struct {
				Samples struct {
					PerStep [][2]float64 `json:"totalQueryableSamplesPerStep"`
					Total   int64        `json:"totalQueryableSamples"`
				} `json:"samples"`
			} `json:"stats"`
		} `json:"data"`
	}
	code, body := get(t, f.Handler(), "ws-a", rangePath, form)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, int64(3), b.calls.Load(), "legs of days 1, 2 and 3")
	var split, unsplit stats
	require.NoError(t, json.Unmarshal([]byte(body), &split))
	_, body = direct(t, prom, rangePath, form)
	require.NoError(t, json.Unmarshal([]byte(body), &unsplit))

	// 181 steps (30 h every 10 min, both ends), each reading the 20 samples
	// of its 5 minutes (left-open) of each of 3 series.
	steps := int64(30*6 + 1)
	require.Equal(t, steps*20*3, split.Data.Stats.Samples.Total)
	require.Equal(t, unsplit.Data.Stats.Samples.Total, split.Data.Stats.Samples.Total)
	require.Equal(t, unsplit.Data.Stats.Samples.PerStep, split.Data.Stats.Samples.PerStep)
	require.Len(t, split.Data.Stats.Samples.PerStep, int(steps))
	require.Equal(t, unsplit.Data.Result, split.Data.Result)
}

// TestResultsCache: the second identical query is answered from the cache,
// identically; never the legs within -query-frontend.max-cache-freshness;
// never another workspace's.
func TestResultsCache(t *testing.T) {
	b := &backend{handlers: map[string]http.Handler{
		"ws-a": promAPI(storageWith(t, "requests_total", 3, dataFrom, dataTo, 15*time.Second)),
		"ws-b": promAPI(storageWith(t, "requests_total", 2, dataFrom, dataTo, 30*time.Second)),
	}}
	start, end := dataFrom.Add(time.Hour), dataTo.Add(-2*time.Minute) // three legs
	form := rangeForm(`sum by (pod) (rate(requests_total[5m]))`, start, end, "300")

	t.Run("repeated query", func(t *testing.T) {
		f, reg := newTestFrontend(t, defaultConfig(), testLimits{}, b, dataTo.Add(time.Hour))
		before := b.calls.Load()
		code, first := get(t, f.Handler(), "ws-a", rangePath, form)
		require.Equal(t, http.StatusOK, code, first)
		require.Equal(t, int64(3), b.calls.Load()-before)
		code, second := get(t, f.Handler(), "ws-a", rangePath, form)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, first, second)
		require.Equal(t, int64(3), b.calls.Load()-before, "all legs from the cache")
		require.Equal(t, 3.0, testutil.ToFloat64(f.metrics.cacheHits))
		require.Equal(t, 3.0, testutil.ToFloat64(f.metrics.cacheMisses))
		_ = reg

		// Without the cache, the same answer.
		cfg := defaultConfig()
		cfg.ResultsCache.Backend = BackendNone
		nc, _ := newTestFrontend(t, cfg, testLimits{}, b, dataTo.Add(time.Hour))
		_, uncached := get(t, nc.Handler(), "ws-a", rangePath, form)
		require.Equal(t, first, uncached)

		// Another workspace's identical query is its own.
		before = b.calls.Load()
		code, other := get(t, f.Handler(), "ws-b", rangePath, form)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, int64(3), b.calls.Load()-before, "no leg of ws-a's served to ws-b")
		require.NotEqual(t, first, other)
		_, otherUncached := get(t, nc.Handler(), "ws-b", rangePath, form)
		require.Equal(t, otherUncached, other)
	})

	t.Run("freshest legs never cached", func(t *testing.T) {
		// Now is 5 minutes after the query's end: the last leg reaches into
		// the freshest 10 minutes.
		f, _ := newTestFrontend(t, defaultConfig(), testLimits{}, b, end.Add(5*time.Minute))
		before := b.calls.Load()
		_, first := get(t, f.Handler(), "ws-a", rangePath, form)
		_, second := get(t, f.Handler(), "ws-a", rangePath, form)
		require.Equal(t, first, second)
		require.Equal(t, int64(4), b.calls.Load()-before, "3 legs, then the fresh one again")
		require.Equal(t, 2.0, testutil.ToFloat64(f.metrics.cacheMisses))
	})

	t.Run("answers with warnings and errors are not cached", func(t *testing.T) {
		f, _ := newTestFrontend(t, defaultConfig(), testLimits{}, b, dataTo.Add(time.Hour))
		// rate over a gauge-named series: Prometheus answers an info, not a
		// warning, so use a query that warns: a histogram_quantile over
		// floats with no le label.
		warn := rangeForm(`histogram_quantile(0.9, requests_total)`, start, end, "300")
		before := b.calls.Load()
		code, first := get(t, f.Handler(), "ws-a", rangePath, warn)
		require.Equal(t, http.StatusOK, code, first)
		require.Contains(t, first, `"warnings"`)
		get(t, f.Handler(), "ws-a", rangePath, warn)
		require.Equal(t, int64(6), b.calls.Load()-before)

		bad := rangeForm(`rate(requests_total)`, start, end, "300")
		code, _ = get(t, f.Handler(), "ws-a", rangePath, bad)
		require.Equal(t, http.StatusBadRequest, code)
	})
}

// TestRetries: a leg answered 5xx once is sent again and the answer is
// right; a 4xx is not retried.
func TestRetries(t *testing.T) {
	prom := promAPI(storageWith(t, "requests_total", 3, dataFrom, dataTo, 15*time.Second))
	b := &backend{handlers: map[string]http.Handler{"ws-a": prom}}
	cfg := defaultConfig()
	cfg.ResultsCache.Backend = BackendNone
	f, _ := newTestFrontend(t, cfg, testLimits{}, b, dataTo.Add(time.Hour))
	form := rangeForm(`rate(requests_total[5m])`, dataFrom.Add(time.Hour), dataTo.Add(-time.Hour), "600")
	_, want := direct(t, prom, rangePath, form)

	b.fail = func(n int64, _ *httpgrpc.HTTPRequest) *httpgrpc.HTTPResponse {
		if n == 2 {
			return &httpgrpc.HTTPResponse{Code: http.StatusServiceUnavailable, Body: []byte("querier restarting")}
		}
		return nil
	}
	code, got := get(t, f.Handler(), "ws-a", rangePath, form)
	require.Equal(t, http.StatusOK, code, got)
	require.Equal(t, want, got)
	require.Equal(t, int64(4), b.calls.Load(), "3 legs and one retry")
	require.Equal(t, 1.0, testutil.ToFloat64(f.metrics.retries))

	// A 5xx twice: the query fails with it.
	b.calls.Store(0)
	b.fail = func(n int64, req *httpgrpc.HTTPRequest) *httpgrpc.HTTPResponse {
		if n <= 2 {
			return &httpgrpc.HTTPResponse{Code: http.StatusInternalServerError, Body: []byte(`{"status":"error","errorType":"internal","error":"boom"}`)}
		}
		return nil
	}
	cfg.MaxParallelismPerQuery = 1 // legs in order: the first leg fails twice
	f2, _ := newTestFrontend(t, cfg, testLimits{}, b, dataTo.Add(time.Hour))
	code, got = get(t, f2.Handler(), "ws-a", rangePath, form)
	require.Equal(t, http.StatusInternalServerError, code)
	require.Contains(t, got, "boom")

	// A 4xx is answered at once.
	b.calls.Store(0)
	b.fail = func(int64, *httpgrpc.HTTPRequest) *httpgrpc.HTTPResponse {
		return &httpgrpc.HTTPResponse{Code: http.StatusUnprocessableEntity, Body: []byte(`{"status":"error","errorType":"execution","error":"limit"}`)}
	}
	code, _ = get(t, f2.Handler(), "ws-a", "/api/v1/query", url.Values{"query": {"up"}})
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Equal(t, int64(1), b.calls.Load())
}

// TestSentWholeOrNotCached: what the split or the cache would answer
// otherwise than the querier is sent whole, or not served from the cache.
func TestSentWholeOrNotCached(t *testing.T) {
	prom := promAPI(storageWith(t, "requests_total", 3, dataFrom, dataTo, 15*time.Second))
	b := &backend{handlers: map[string]http.Handler{"ws-a": prom}}
	start, end := dataFrom.Add(time.Hour), dataTo.Add(-2*time.Minute) // three legs
	form := rangeForm(`sum by (pod) (rate(requests_total[5m]))`, start, end, "300")

	t.Run("limit", func(t *testing.T) {
		// Prometheus cuts each answer to its first limit series: split,
		// each leg would keep its own.
		f, _ := newTestFrontend(t, defaultConfig(), testLimits{}, b, dataTo.Add(time.Hour))
		limited := rangeForm(`requests_total`, start, end, "300")
		limited.Set("limit", "2")
		before := b.calls.Load()
		code, got := get(t, f.Handler(), "ws-a", rangePath, limited)
		require.Equal(t, http.StatusOK, code, got)
		require.Equal(t, int64(1), b.calls.Load()-before, "sent whole")
		_, want := direct(t, prom, rangePath, limited)
		require.Equal(t, want, got)
	})

	t.Run("queries of a workspace whose queries are logged", func(t *testing.T) {
		f, _ := newTestFrontend(t, defaultConfig(), testLimits{}, b, dataTo.Add(time.Hour))
		f.queryLogged = func(_ context.Context, ws string) bool { return ws == "ws-a" }
		before := b.calls.Load()
		code, got := get(t, f.Handler(), "ws-a", rangePath, form)
		require.Equal(t, http.StatusOK, code, got)
		require.Equal(t, int64(1), b.calls.Load()-before, "sent whole: logged once, with all its samples")
	})

	t.Run("the out-of-order window", func(t *testing.T) {
		// The query ended 30 minutes ago, within the workspace's hour of
		// out-of-order window: its last leg may still change.
		f, _ := newTestFrontend(t, defaultConfig(), testLimits{outOfOrder: time.Hour}, b, end.Add(30*time.Minute))
		before := b.calls.Load()
		get(t, f.Handler(), "ws-a", rangePath, form)
		get(t, f.Handler(), "ws-a", rangePath, form)
		require.Equal(t, int64(4), b.calls.Load()-before, "3 legs, then the last one again")
	})

	t.Run("a query blocked since it was cached", func(t *testing.T) {
		f, _ := newTestFrontend(t, defaultConfig(), testLimits{}, b, dataTo.Add(time.Hour))
		get(t, f.Handler(), "ws-a", rangePath, form)
		f.limits = testLimits{blocked: form.Get("query")}
		before := b.calls.Load()
		get(t, f.Handler(), "ws-a", rangePath, form)
		require.Equal(t, int64(3), b.calls.Load()-before, "every leg asked of the queriers, whose guard refuses it")
	})

	t.Run("the client's user agent reaches the queriers", func(t *testing.T) {
		f, _ := newTestFrontend(t, defaultConfig(), testLimits{}, b, dataTo.Add(time.Hour))
		var agents []string
		var mu sync.Mutex
		b.fail = func(_ int64, req *httpgrpc.HTTPRequest) *httpgrpc.HTTPResponse {
			for _, h := range req.Headers {
				if h.Key == "User-Agent" {
					mu.Lock()
					agents = append(agents, h.Values...)
					mu.Unlock()
				}
			}
			return nil
		}
		defer func() { b.fail = nil }()
		r := httptest.NewRequest(http.MethodPost, rangePath, strings.NewReader(rangeForm(`up`, start, end, "300").Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("User-Agent", "Grafana/12.0")
		r = r.WithContext(tenant.WithID(r.Context(), "ws-a"))
		f.Handler().ServeHTTP(httptest.NewRecorder(), r)
		require.Equal(t, []string{"Grafana/12.0", "Grafana/12.0", "Grafana/12.0"}, agents)
	})
}
