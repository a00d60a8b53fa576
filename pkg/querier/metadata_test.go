package querier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/scrape"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"
)

func meta(name string, typ prompb.MetricMetadata_MetricType, help, unit string) prompb.MetricMetadata {
	return prompb.MetricMetadata{MetricFamilyName: name, Type: typ, Help: help, Unit: unit}
}

func TestMergeMetadata(t *testing.T) {
	const (
		counter = prompb.MetricMetadata_COUNTER
		gauge   = prompb.MetricMetadata_GAUGE
	)
	// Replicas a and b hold the same metric names; c holds a shard of
	// other names.
	a := []prompb.MetricMetadata{meta("x", gauge, "X.", ""), meta("x", counter, "X was a counter.", "")}
	b := []prompb.MetricMetadata{meta("x", gauge, "X.", "")}
	c := []prompb.MetricMetadata{meta("gaugehist", prompb.MetricMetadata_GAUGEHISTOGRAM, "G.", "seconds")}
	for _, tc := range []struct {
		name                  string
		limit, limitPerMetric int
		want                  map[string][]metadata.Metadata
	}{
		{"all", -1, -1, map[string][]metadata.Metadata{
			"gaugehist": {{Type: model.MetricTypeGaugeHistogram, Help: "G.", Unit: "seconds"}},
			"x":         {{Type: model.MetricTypeCounter, Help: "X was a counter."}, {Type: model.MetricTypeGauge, Help: "X."}},
		}},
		{"limit keeps the first names", 1, -1, map[string][]metadata.Metadata{
			"gaugehist": {{Type: model.MetricTypeGaugeHistogram, Help: "G.", Unit: "seconds"}},
		}},
		{"limit 0", 0, -1, map[string][]metadata.Metadata{}},
		{"limit per metric", -1, 1, map[string][]metadata.Metadata{
			"gaugehist": {{Type: model.MetricTypeGaugeHistogram, Help: "G.", Unit: "seconds"}},
			"x":         {{Type: model.MetricTypeCounter, Help: "X was a counter."}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, mergeMetadata([][]prompb.MetricMetadata{a, b, c}, tc.limit, tc.limitPerMetric, ""))
		})
	}
}

// TestMetricsMetadataReadsAQuorum: the answers of a quorum are merged; a
// replica that fails is tolerated up to the quorum, beyond it the read
// fails; the limits reach the ingesters.
func TestMetricsMetadataReadsAQuorum(t *testing.T) {
	md := []prompb.MetricMetadata{meta("up", prompb.MetricMetadata_GAUGE, "Up.", "")}
	ok1, ok2 := &replica{metadata: md}, &replica{metadata: md}
	got, err := newQueryable(ok1, ok2, &replica{err: errors.New("down")}).MetricsMetadata(wsCtx(), 5, 2, "up")
	require.NoError(t, err)
	require.Equal(t, map[string][]metadata.Metadata{"up": {{Type: model.MetricTypeGauge, Help: "Up."}}}, got)
	require.Equal(t, int32(5), ok1.lastMD.Limit)
	require.Equal(t, int32(2), ok1.lastMD.LimitPerMetric)
	require.Equal(t, "up", ok1.lastMD.Metric)

	_, err = newQueryable(ok1, &replica{err: errors.New("down")}, &replica{err: errors.New("down")}).MetricsMetadata(wsCtx(), -1, -1, "")
	require.Error(t, err)
}

// targets is a TargetRetriever with one active target.
type targets struct{ t *scrape.Target }

func (r targets) TargetsActive() map[string][]*scrape.Target {
	return map[string][]*scrape.Target{"job": {r.t}}
}
func (targets) TargetsDropped() map[string][]*scrape.Target { return nil }
func (targets) TargetsDroppedCounts() map[string]int        { return nil }
func (targets) ScrapePoolConfig(string) (*config.ScrapeConfig, error) {
	return nil, errors.New("none")
}

// metadataOf is a target's metadata store.
type metadataOf []scrape.MetricMetadata

func (m metadataOf) ListMetadata() []scrape.MetricMetadata { return m }
func (m metadataOf) GetMetadata(name string) (scrape.MetricMetadata, bool) {
	for _, e := range m {
		if e.MetricFamily == name {
			return e, true
		}
	}
	return scrape.MetricMetadata{}, false
}
func (m metadataOf) SizeMetadata() int   { return 0 }
func (m metadataOf) LengthMetadata() int { return len(m) }

// TestMetadataAnswersAsPrometheus: for the same metadata, /api/v1/metadata
// answers the bytes Prometheus's own handler answers from a scrape target.
func TestMetadataAnswersAsPrometheus(t *testing.T) {
	scraped := metadataOf{
		{MetricFamily: "http_requests_total", Type: model.MetricTypeCounter, Help: `Requests "served" <by> & for you.`},
		{MetricFamily: "request_duration_seconds", Type: model.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"},
		{MetricFamily: "ünïcode", Type: model.MetricTypeGauge, Help: "Ümlauts\nand a newline."},
	}
	target := scrape.NewTarget(labels.FromStrings("job", "x"), &config.ScrapeConfig{}, nil, nil)
	target.SetMetadataStore(scraped)
	prom := route.New()
	newPrometheusAPI(Config{}, nil, nil, nil, func(context.Context) v1.TargetRetriever { return targets{target} },
		prometheus.NewRegistry(), log.NewNopLogger()).Register(prom.WithPrefix("/api/v1"))

	var pushed []prompb.MetricMetadata
	for _, m := range scraped {
		pushed = append(pushed, prompb.MetricMetadata{MetricFamilyName: m.MetricFamily, Type: prompb.FromMetadataType(m.Type), Help: m.Help, Unit: m.Unit})
	}
	ours := metadataHandler(newQueryable(&replica{metadata: pushed}))

	for _, query := range []string{"", "?metric=http_requests_total", "?metric=none", "?limit_per_metric=1"} {
		t.Run(query, func(t *testing.T) {
			want := serve(t, prom, "/api/v1/metadata"+query)
			got := serve(t, ours, "/api/v1/metadata"+query)
			require.Equal(t, want.body, got.body)
			require.Equal(t, want.status, got.status)
			require.Equal(t, want.contentType, got.contentType)
		})
	}
	for _, query := range []string{"?limit=x", "?limit_per_metric=1.5"} {
		t.Run(query, func(t *testing.T) {
			want := serve(t, prom, "/api/v1/metadata"+query)
			got := serve(t, ours, "/api/v1/metadata"+query)
			require.Equal(t, want.status, got.status)
			require.Contains(t, got.body, `"errorType":"bad_data"`)
			require.Contains(t, got.body, "must be a number")
		})
	}
}

type answer struct {
	status            int
	body, contentType string
}

func serve(t *testing.T, h http.Handler, target string) answer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil).WithContext(wsCtx()))
	b, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return answer{rec.Code, string(b), rec.Header().Get("Content-Type")}
}

func TestMergeExemplars(t *testing.T) {
	series := func(job string, ex ...prompb.Exemplar) prompb.TimeSeries {
		return prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: job}}, Exemplars: ex}
	}
	ex := func(trace string, ts int64) prompb.Exemplar {
		return prompb.Exemplar{Labels: []prompb.Label{{Name: "trace_id", Value: trace}}, Value: float64(ts), Timestamp: ts}
	}
	got := mergeExemplars([][]prompb.TimeSeries{
		{series("b", ex("b1", 1)), series("a", ex("a2", 2), ex("a3", 3))},
		{series("a", ex("a1", 1), ex("a2", 2))}, // another replica
	})
	want := []exemplar.QueryResult{
		{SeriesLabels: labels.FromStrings("__name__", "up", "job", "a"), Exemplars: []exemplar.Exemplar{
			{Labels: labels.FromStrings("trace_id", "a1"), Value: 1, Ts: 1, HasTs: true},
			{Labels: labels.FromStrings("trace_id", "a2"), Value: 2, Ts: 2, HasTs: true},
			{Labels: labels.FromStrings("trace_id", "a3"), Value: 3, Ts: 3, HasTs: true},
		}},
		{SeriesLabels: labels.FromStrings("__name__", "up", "job", "b"), Exemplars: []exemplar.Exemplar{
			{Labels: labels.FromStrings("trace_id", "b1"), Value: 1, Ts: 1, HasTs: true},
		}},
	}
	require.Equal(t, want, got)
}

func TestBuildInfo(t *testing.T) {
	got := serve(t, buildInfoHandler(), "/api/v1/status/buildinfo")
	require.Equal(t, http.StatusOK, got.status)
	require.Contains(t, got.body, `"status":"success"`)
	require.Contains(t, got.body, `"application":"Vigil"`)
	require.Contains(t, got.body, `"version":"`+prometheusVersion+`"`)
	require.NotContains(t, got.body, "features", "Grafana takes a server that reports features for Mimir")

	// The version is the Prometheus release of the module Vigil builds
	// with: v0.3MM.P is Prometheus 3.MM.P.
	mod, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	for _, line := range strings.Split(string(mod), "\n") {
		var minor, patch int
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "github.com/prometheus/prometheus v0.3%d.%d", &minor, &patch); err == nil {
			require.Equal(t, fmt.Sprintf("3.%d.%d", minor, patch), prometheusVersion, "update prometheusVersion to the module's release")
			return
		}
	}
	t.Fatal("no prometheus module in go.mod")
}
