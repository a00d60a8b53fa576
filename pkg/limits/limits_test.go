package limits

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/stretchr/testify/require"
)

func TestOverrides(t *testing.T) {
	var def Limits
	def.RegisterFlags(flag.NewFlagSet("t", flag.PanicOnError))
	require.Equal(t, 70, def.Distributor.MaxLabelNamesPerSeries)

	custom := def
	custom.Distributor.MaxLabelNamesPerSeries = 5
	o, err := NewOverrides(def, map[string]*Limits{"ws-a": &custom})
	require.NoError(t, err)
	require.Equal(t, 5, o.MaxLabelNamesPerSeries("ws-a"))
	require.Equal(t, 70, o.MaxLabelNamesPerSeries("ws-b"))

	bad := def
	bad.Distributor.MaxLabelNamesPerSeries = 0
	_, err = NewOverrides(def, map[string]*Limits{"ws-c": &bad})
	require.ErrorContains(t, err, "ws-c")
}

func TestOverridesFileReload(t *testing.T) {
	var def Limits
	def.RegisterFlags(flag.NewFlagSet("t", flag.PanicOnError))
	o, err := NewOverrides(def, nil)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  ws-a:\n    max_label_names_per_series: 12\n"), 0o644))

	l := NewLoader(OverridesConfig{File: file, ReloadPeriod: time.Hour}, o, log.NewNopLogger())
	require.NoError(t, l.load(context.Background()))
	require.Equal(t, 12, o.MaxLabelNamesPerSeries("ws-a"))
	require.Equal(t, def.Distributor.MaxLabelValueLength, o.MaxLabelValueLength("ws-a"), "unnamed limits keep their defaults")
	require.Equal(t, 70, o.MaxLabelNamesPerSeries("ws-b"))

	// A broken file keeps the last good overrides.
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  ws-a:\n    no_such_limit: 1\n"), 0o644))
	require.Error(t, l.load(context.Background()))
	require.Equal(t, 12, o.MaxLabelNamesPerSeries("ws-a"))

	// An invalid value is refused.
	_, err = ParseOverrides([]byte("overrides:\n  ws-a:\n    max_label_names_per_series: 0\n"), def)
	require.ErrorContains(t, err, "ws-a")
	m, err := ParseOverrides(nil, def)
	require.NoError(t, err)
	require.Empty(t, m)
}

// TestOverridesOfEverySection: limits of every component's section are
// named flat in the overrides file, durations included.
func TestOverridesOfEverySection(t *testing.T) {
	var def Limits
	def.RegisterFlags(flag.NewFlagSet("t", flag.PanicOnError))
	m, err := ParseOverrides([]byte(`
overrides:
  ws-a:
    creation_grace_period: 1h
    max_fetched_series_per_query: 10
    max_fetched_chunk_bytes_per_query: 1000
    max_global_series_per_user: 5
    out_of_order_time_window: 5m
    ingestion_rate: 10
    ha_replica_label: replica
`), def)
	require.NoError(t, err)
	o, err := NewOverrides(def, m)
	require.NoError(t, err)
	require.Equal(t, time.Hour, o.CreationGracePeriod("ws-a"))
	require.Equal(t, 10, o.MaxFetchedSeriesPerQuery("ws-a"))
	require.Equal(t, int64(1000), o.MaxFetchedChunkBytesPerQuery("ws-a"))
	require.Equal(t, 20_000_000, o.MaxFetchedChunksPerQuery("ws-a"), "unnamed limits keep their defaults")
	require.Equal(t, 12_000_000, o.MaxFetchedSeriesPerQuery("ws-b"))
	require.Equal(t, 10*time.Minute, o.CreationGracePeriod("ws-b"))
	require.Equal(t, 5, o.MaxGlobalSeriesPerUser("ws-a"))
	require.Equal(t, 5*time.Minute, o.OutOfOrderTimeWindow("ws-a"))
	require.Equal(t, 10.0, o.IngestionRate("ws-a"))
	require.Equal(t, "replica", o.HAReplicaLabel("ws-a"))
	require.Equal(t, "cluster", o.HAClusterLabel("ws-a"))
	require.Equal(t, 10_000_000, o.MaxGlobalSeriesPerUser("ws-b"), "AMP quota")
	require.Equal(t, 2_000_000, o.SeriesCapacityMinimum("ws-b"))
	require.Equal(t, 170_000.0, o.IngestionRate("ws-b"))
	require.Equal(t, 1_000_000, o.IngestionBurstSize("ws-b"))
	require.Equal(t, time.Hour, o.PastGracePeriod("ws-b"))
	require.Equal(t, 500, o.HAMaxClusters("ws-b"))
}

// TestBlockedQueriesFromTheOverridesFile: blocked queries are named in the
// overrides file; an invalid regex is refused.
func TestBlockedQueriesFromTheOverridesFile(t *testing.T) {
	var def Limits
	def.RegisterFlags(flag.NewFlagSet("t", flag.PanicOnError))
	m, err := ParseOverrides([]byte(`
overrides:
  ws-a:
    max_query_length: 1d
    max_query_expression_depth: 10
    blocked_queries:
      - pattern: up
      - pattern: ".*expensive.*"
        regex: true
`), def)
	require.NoError(t, err)
	o, err := NewOverrides(def, m)
	require.NoError(t, err)
	require.Equal(t, 24*time.Hour, o.MaxQueryLength("ws-a"))
	require.Equal(t, 10, o.MaxQueryExpressionDepth("ws-a"))
	require.Equal(t, []BlockedQuery{{Pattern: "up"}, {Pattern: ".*expensive.*", Regex: true}}, o.BlockedQueries("ws-a"))
	require.Equal(t, 32*24*time.Hour, o.MaxQueryLength("ws-b"), "AMP quota")
	require.Equal(t, 1<<20, o.MaxQueryExpressionSizeBytes("ws-b"))
	_, err = ParseOverrides([]byte("overrides:\n  ws-a:\n    blocked_queries: [{pattern: '(', regex: true}]\n"), def)
	require.ErrorContains(t, err, "blocked query pattern")
}
