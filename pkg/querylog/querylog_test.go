package querylog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// fakeConfigs is a Configs over a map, counting lookups.
type fakeConfigs struct {
	mu      sync.Mutex
	byWS    map[string]Settings
	err     error
	lookups int
}

func (f *fakeConfigs) QueryLogging(_ context.Context, ws string) (Settings, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if f.err != nil {
		return Settings{}, false, f.err
	}
	s, ok := f.byWS[ws]
	return s, ok, nil
}

func (f *fakeConfigs) set(ws string, s *Settings) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s == nil {
		delete(f.byWS, ws)
	} else {
		f.byWS[ws] = *s
	}
}

const (
	wsA    = "ws-aaaaaaaa-0000-4000-8000-000000000001"
	wsB    = "ws-bbbbbbbb-0000-4000-8000-000000000002"
	wsC    = "ws-cccccccc-0000-4000-8000-000000000003"
	groupA = "arn:aws:logs:us-east-1:111111111111:log-group:a:*"
)

func newTestLogger(t *testing.T, cfg Config, configs Configs, now *time.Time) (*Logger, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	l, err := New(cfg, t.TempDir(), configs, reg, log.NewNopLogger())
	require.NoError(t, err)
	l.now = func() time.Time { return *now }
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	return l, reg
}

func fileConfig(dir string) Config {
	return Config{Sink: SinkFile, Dir: dir, MaxOpenFiles: 64, MaxFileBytes: 100 << 20}
}

// readLines returns the JSON lines of a workspace's log file (none when
// it does not exist).
func readLines(t *testing.T, dir, ws string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, ws+".log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := map[string]any{}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

// TestLogAboveThreshold: a query processing more samples than the
// workspace's qspThreshold is logged once, in its workspace's file only;
// one at or below it is not.
func TestLogAboveThreshold(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	configs := &fakeConfigs{byWS: map[string]Settings{
		wsA: {LogGroupARN: groupA, QSPThreshold: 1000},
		wsB: {LogGroupARN: "arn:aws:logs:us-east-1:222222222222:log-group:b:*", QSPThreshold: 0},
	}}
	l, reg := newTestLogger(t, fileConfig(dir), configs, &now)
	ctx := tenant.WithAccount(context.Background(), "111111111111")

	start := now.Add(-time.Hour)
	l.Log(ctx, wsA, Entry{Query: `sum(rate(big[5m]))`, Start: start, End: now, Step: 15 * time.Second, SamplesProcessed: 1001, Series: 12,
		Duration: 1500 * time.Millisecond, Caller: "arn:aws:iam::111111111111:user/admin", UserAgent: "Grafana/11"})
	l.Log(ctx, wsA, Entry{Query: `small`, Start: now, End: now, SamplesProcessed: 1000})
	l.Log(ctx, wsA, Entry{Query: `tiny`, Start: now, End: now, SamplesProcessed: 3})

	lines := readLines(t, dir, wsA)
	require.Len(t, lines, 1)
	require.Equal(t, map[string]any{
		"time":             "2026-12-01T10:00:00Z",
		"workspaceId":      wsA,
		"logGroupArn":      groupA,
		"query":            `sum(rate(big[5m]))`,
		"start":            "2026-12-01T09:00:00Z",
		"end":              "2026-12-01T10:00:00Z",
		"step":             15.0,
		"samplesProcessed": 1001.0,
		"series":           12.0,
		"durationSeconds":  1.5,
		"account":          "111111111111",
		"caller":           "arn:aws:iam::111111111111:user/admin",
		"userAgent":        "Grafana/11",
	}, lines[0])
	require.Empty(t, readLines(t, dir, wsB), "another workspace's file never holds it")

	// wsB logs everything above 0 samples, in its own file; an instant
	// query has no step.
	l.Log(ctx, wsB, Entry{Query: `up`, Start: now, End: now, SamplesProcessed: 1})
	linesB := readLines(t, dir, wsB)
	require.Len(t, linesB, 1)
	require.Equal(t, "up", linesB[0]["query"])
	require.NotContains(t, linesB[0], "step")
	require.Len(t, readLines(t, dir, wsA), 1)

	// A workspace without a configuration logs nothing.
	l.Log(ctx, wsC, Entry{Query: `up`, SamplesProcessed: 1 << 40})
	require.Empty(t, readLines(t, dir, wsC))

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_querylog_logged_queries_total Lines (queries) written to the workspaces' logs: those their logging configuration selects.
# TYPE vigil_querylog_logged_queries_total counter
vigil_querylog_logged_queries_total 2
`), "vigil_querylog_logged_queries_total"))
}

// TestSettingsAreCached: a workspace's configuration is looked up at most
// every refreshPeriod; a failed lookup leaves the last settings in force.
func TestSettingsAreCached(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	dir := t.TempDir()
	configs := &fakeConfigs{byWS: map[string]Settings{wsA: {LogGroupARN: groupA, QSPThreshold: 10}}}
	l, _ := newTestLogger(t, fileConfig(dir), configs, &now)
	ctx := context.Background()

	for range 5 {
		l.Log(ctx, wsA, Entry{Query: "q", SamplesProcessed: 11})
	}
	require.Equal(t, 1, configs.lookups)
	require.Len(t, readLines(t, dir, wsA), 5)

	configs.set(wsA, nil) // deleted through another replica
	now = now.Add(refreshPeriod - time.Millisecond)
	l.Log(ctx, wsA, Entry{Query: "q", SamplesProcessed: 11})
	require.Len(t, readLines(t, dir, wsA), 6, "the cached settings stand for refreshPeriod")
	now = now.Add(time.Millisecond)
	l.Log(ctx, wsA, Entry{Query: "q", SamplesProcessed: 11})
	require.Len(t, readLines(t, dir, wsA), 6)
	require.Equal(t, 2, configs.lookups)

	configs.set(wsA, &Settings{LogGroupARN: groupA, QSPThreshold: 10})
	now = now.Add(refreshPeriod)
	l.Log(ctx, wsA, Entry{Query: "q", SamplesProcessed: 11})
	require.Len(t, readLines(t, dir, wsA), 7)

	configs.err = errors.New("object storage down")
	now = now.Add(refreshPeriod)
	l.Log(ctx, wsA, Entry{Query: "q", SamplesProcessed: 11})
	require.Len(t, readLines(t, dir, wsA), 8, "a failed lookup keeps the last settings")
}

// TestOpenFilesAreBounded: at most MaxOpenFiles files are open; a closed
// one is opened again, appending.
func TestOpenFilesAreBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	dir := t.TempDir()
	configs := &fakeConfigs{byWS: map[string]Settings{}}
	ws := []string{wsA, wsB, wsC}
	for _, w := range ws {
		configs.byWS[w] = Settings{LogGroupARN: groupA}
	}
	l, _ := newTestLogger(t, Config{Sink: SinkFile, Dir: dir, MaxOpenFiles: 2, MaxFileBytes: 100 << 20}, configs, &now)
	fs := l.sink.(*fileSink)
	for round := range 3 {
		for _, w := range ws {
			l.Log(context.Background(), w, Entry{Query: w, SamplesProcessed: 1})
			require.LessOrEqual(t, fs.order.Len(), 2)
		}
		for _, w := range ws {
			require.Len(t, readLines(t, dir, w), round+1)
		}
	}
	l.Forget(wsC)
	require.NotContains(t, fs.open, wsC)
	require.Len(t, readLines(t, dir, wsC), 3, "a deleted workspace's log stays")
}

func TestStdoutSinkAndNone(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	configs := &fakeConfigs{byWS: map[string]Settings{wsA: {LogGroupARN: groupA}}}
	l, _ := newTestLogger(t, Config{Sink: SinkStdout, MaxOpenFiles: 1}, configs, &now)
	var buf bytes.Buffer
	l.sink = &writerSink{w: &buf}
	l.Log(context.Background(), wsA, Entry{Query: "up", SamplesProcessed: 1})
	require.Equal(t, 1, strings.Count(buf.String(), "\n"))
	require.Contains(t, buf.String(), `"workspaceId":"`+wsA+`"`)

	none, _ := newTestLogger(t, Config{Sink: SinkNone, MaxOpenFiles: 1}, configs, &now)
	none.Log(context.Background(), wsA, Entry{Query: "up", SamplesProcessed: 1})
	var nilLogger *Logger
	nilLogger.Log(context.Background(), wsA, Entry{Query: "up", SamplesProcessed: 1})
	nilLogger.Forget(wsA)
	require.NoError(t, nilLogger.Close())
	require.Equal(t, 0, configs.lookups-1, "only the stdout logger looked the workspace up")
}

func TestConfigValidate(t *testing.T) {
	require.Error(t, (&Config{Sink: "s3", MaxOpenFiles: 1}).Validate())
	require.Error(t, (&Config{Sink: SinkFile}).Validate())
	require.Error(t, (&Config{Sink: SinkFile, MaxOpenFiles: 1}).Validate(), "no file size")
	require.NoError(t, (&Config{Sink: SinkFile, MaxOpenFiles: 1, MaxFileBytes: 1}).Validate())
}

// TestFilesAreRotated: a workspace's file about to grow past its size
// becomes <workspace>.log.1, replacing the previous one: a workspace's log
// never takes more than twice the size.
func TestFilesAreRotated(t *testing.T) {
	dir := t.TempDir()
	s := newFileSink(dir, 4, 100)
	line := []byte(strings.Repeat("x", 39) + "\n") // 40 bytes
	for range 7 {
		require.NoError(t, s.write(wsA, line))
	}
	require.NoError(t, s.close())
	cur, err := os.ReadFile(filepath.Join(dir, wsA+".log"))
	require.NoError(t, err)
	prev, err := os.ReadFile(filepath.Join(dir, wsA+".log.1"))
	require.NoError(t, err)
	require.Len(t, cur, 40, "the seventh line")
	require.Len(t, prev, 80, "the fifth and sixth lines; the first four rotated away")
	// A reopened sink knows the file's size: the eighth line joins the
	// seventh, the ninth starts a new file.
	s = newFileSink(dir, 4, 100)
	require.NoError(t, s.write(wsA, line))
	require.NoError(t, s.write(wsA, line))
	require.NoError(t, s.close())
	cur, err = os.ReadFile(filepath.Join(dir, wsA+".log"))
	require.NoError(t, err)
	require.Len(t, cur, 40)
	prev, err = os.ReadFile(filepath.Join(dir, wsA+".log.1"))
	require.NoError(t, err)
	require.Len(t, prev, 80)
}
