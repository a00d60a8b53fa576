// Package querylog writes the query log of AMP's query logging
// configuration: one JSON line for each finished query of a workspace that
// processed more samples than the workspace's qspThreshold, to the sink the
// operator maps the configuration's destination to.
package querylog

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Sinks.
const (
	SinkFile   = "file"
	SinkStdout = "stdout"
	SinkNone   = "none"
)

// Config configures where query logs (or vended logs) go.
type Config struct {
	Sink         string `yaml:"sink"`
	Dir          string `yaml:"dir"`
	MaxOpenFiles int    `yaml:"max_open_files"`
	MaxFileBytes int64  `yaml:"max_file_size_bytes"`

	// prefix is the flags' prefix, for Validate's messages.
	prefix string
}

// RegisterVendedFlags registers the flags of AMP's vended logs: the
// ruler's and the alertmanager's WARN and ERROR events of each workspace
// with a logging configuration (CreateLoggingConfiguration).
func (c *Config) RegisterVendedFlags(f *flag.FlagSet) {
	c.prefix = "vended-logs."
	f.StringVar(&c.Sink, "vended-logs.sink", SinkFile, "Where the ruler's and the alertmanager's WARN and ERROR events of a workspace with a logging configuration (CreateLoggingConfiguration) are written, one JSON line each (AMP's vended logs), whatever log group the configuration names: file (<workspace>.log in -vended-logs.dir), stdout, or none.")
	f.StringVar(&c.Dir, "vended-logs.dir", "", "Directory of the per-workspace vended log files with -vended-logs.sink=file. Empty: vended-logs in -data-dir.")
	f.Int64Var(&c.MaxFileBytes, "vended-logs.max-file-size-bytes", 100<<20, "Largest a workspace's vended log file grows: past it, the file is renamed <workspace>.log.1 (replacing the previous one) and a new one started.")
	f.IntVar(&c.MaxOpenFiles, "vended-logs.max-open-files", 64, "Vended log files kept open at once; the one written least recently is closed first, and opened again when written.")
}

// RegisterFlags registers the query logging flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.prefix = "query-logging."
	f.StringVar(&c.Sink, "query-logging.sink", SinkFile, "Where the queries selected by a workspace's query logging configuration (CreateQueryLoggingConfiguration) are written, one JSON line each, whatever log group the configuration names: file (<workspace>.log in -query-logging.dir), stdout, or none.")
	f.StringVar(&c.Dir, "query-logging.dir", "", "Directory of the per-workspace query log files with -query-logging.sink=file. Empty: query-logs in -data-dir.")
	f.Int64Var(&c.MaxFileBytes, "query-logging.max-file-size-bytes", 100<<20, "Largest a workspace's query log file grows: past it, the file is renamed <workspace>.log.1 (replacing the previous one) and a new one started, so that a workspace's query log takes at most twice this.")
	f.IntVar(&c.MaxOpenFiles, "query-logging.max-open-files", 64, "Query log files kept open at once; the one written least recently is closed first, and opened again when written.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch c.Sink {
	case SinkFile, SinkStdout, SinkNone:
	default:
		return fmt.Errorf("unsupported %ssink %q (supported: file, stdout, none)", c.prefix, c.Sink)
	}
	if c.Sink == SinkFile && c.MaxFileBytes < 1 {
		return fmt.Errorf("%smax-file-size-bytes must be at least 1", c.prefix)
	}
	if c.MaxOpenFiles < 1 {
		return fmt.Errorf("%smax-open-files must be at least 1", c.prefix)
	}
	return nil
}

// Settings is what a workspace's query logging configuration says.
type Settings struct {
	// LogGroupARN is the configuration's destination, written in each line.
	LogGroupARN string
	// QSPThreshold: a query is logged when it processed more samples.
	QSPThreshold int64
}

// Configs gives the query logging configuration of workspaces. It must be
// safe for concurrent use.
type Configs interface {
	// QueryLogging returns the workspace's settings; ok is false when the
	// workspace has no query logging configuration (or does not exist).
	QueryLogging(ctx context.Context, workspace string) (s Settings, ok bool, err error)
}

// Entry describes one finished query.
type Entry struct {
	// Query is the PromQL expression.
	Query string
	// Start and End bound a range query; an instant query has both at its
	// evaluation time.
	Start, End time.Time
	// Step is a range query's resolution; 0 for an instant query.
	Step time.Duration
	// SamplesProcessed is the query's samples processed (QSP, the
	// totalQueryableSamples of its statistics), compared with the
	// workspace's qspThreshold.
	SamplesProcessed int64
	// Series is how many series the query read.
	Series int64
	// Duration is how long the query took.
	Duration time.Duration
	// Caller names who sent the query (the IAM principal's ARN), if known;
	// the account in the context is written besides it.
	Caller string
	// UserAgent is the request's User-Agent.
	UserAgent string
	// Time is when the query finished; zero: when it is logged.
	Time time.Time
}

// line is the JSON of one logged query.
type line struct {
	Time             string   `json:"time"`
	WorkspaceID      string   `json:"workspaceId"`
	LogGroupARN      string   `json:"logGroupArn"`
	Query            string   `json:"query"`
	Start            string   `json:"start"`
	End              string   `json:"end"`
	Step             *float64 `json:"step,omitempty"`
	SamplesProcessed int64    `json:"samplesProcessed"`
	Series           int64    `json:"series"`
	Duration         float64  `json:"durationSeconds"`
	Account          string   `json:"account,omitempty"`
	Caller           string   `json:"caller,omitempty"`
	UserAgent        string   `json:"userAgent,omitempty"`
}

// A workspace's settings are looked up again after refreshPeriod (and,
// while the lookup fails, the last ones stand); at most maxCached
// workspaces are remembered. lookupTimeout bounds a lookup, which does not
// end with the query's context.
const (
	refreshPeriod = 10 * time.Second
	maxCached     = 10_000
	lookupTimeout = 5 * time.Second
)

type cached struct {
	s       Settings
	ok      bool
	fetched time.Time
}

// Logger decides which finished queries are logged and writes them. Its
// methods are safe for concurrent use; a nil *Logger logs nothing.
type Logger struct {
	configs Configs
	sink    sink // nil: -query-logging.sink=none
	now     func() time.Time
	metrics *metrics
	logger  log.Logger

	mu    sync.Mutex
	cache map[string]cached
}

// New returns the query logger, writing to the configured sink; dataDir
// holds the files unless -query-logging.dir names another directory.
func New(cfg Config, dataDir string, configs Configs, reg prometheus.Registerer, logger log.Logger) (*Logger, error) {
	return newLogger(cfg, filepath.Join(dataDir, "query-logs"), configs, newMetrics(reg, "querylog", "queries"), logger)
}

// NewVended returns the vended logs' logger (Event), writing to the
// configured sink; dataDir holds the files unless -vended-logs.dir names
// another directory. configs gives each workspace's logging configuration.
func NewVended(cfg Config, dataDir string, configs Configs, reg prometheus.Registerer, logger log.Logger) (*Logger, error) {
	return newLogger(cfg, filepath.Join(dataDir, "vended-logs"), configs, newMetrics(reg, "vendedlogs", "events"), logger)
}

func newLogger(cfg Config, defaultDir string, configs Configs, m *metrics, logger log.Logger) (*Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Logger{configs: configs, now: time.Now, metrics: m, logger: logger, cache: map[string]cached{}}
	switch cfg.Sink {
	case SinkFile:
		dir := cfg.Dir
		if dir == "" {
			dir = defaultDir
		}
		l.sink = newFileSink(dir, cfg.MaxOpenFiles, cfg.MaxFileBytes)
	case SinkStdout:
		l.sink = &writerSink{w: os.Stdout}
	}
	return l, nil
}

// Log writes e as workspace's query log line when the workspace has a query
// logging configuration and e processed more samples than its
// qspThreshold. It is called once per finished query, after its answer is
// sent; the line is written before it returns.
func (l *Logger) Log(ctx context.Context, workspace string, e Entry) {
	if l == nil || l.sink == nil {
		return
	}
	s, ok := l.settings(ctx, workspace)
	if !ok || e.SamplesProcessed <= s.QSPThreshold {
		return
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	out := line{
		Time:             e.Time.UTC().Format(time.RFC3339Nano),
		WorkspaceID:      workspace,
		LogGroupARN:      s.LogGroupARN,
		Query:            e.Query,
		Start:            e.Start.UTC().Format(time.RFC3339Nano),
		End:              e.End.UTC().Format(time.RFC3339Nano),
		SamplesProcessed: e.SamplesProcessed,
		Series:           e.Series,
		Duration:         e.Duration.Seconds(),
		Caller:           e.Caller,
		UserAgent:        e.UserAgent,
	}
	if e.Step > 0 {
		step := e.Step.Seconds()
		out.Step = &step
	}
	out.Account, _ = tenant.Account(ctx)
	b, err := json.Marshal(out)
	if err == nil {
		err = l.sink.write(workspace, append(b, '\n'))
	}
	if err != nil {
		l.metrics.writeFailures.Inc()
		level.Warn(l.logger).Log("msg", "cannot write query log", "workspace", workspace, "err", err)
		return
	}
	l.metrics.logged.Inc()
}

// vendedLine is one line of AMP's vended logs (guide L3710-L3840).
type vendedLine struct {
	WorkspaceID string        `json:"workspaceId"`
	Message     vendedMessage `json:"message"`
	Component   string        `json:"component"`
}

type vendedMessage struct {
	Log   string `json:"log"`
	Level string `json:"level"`
}

// Event writes a WARN or ERROR event of a workspace's component ("ruler",
// "alertmanager") as a line of its vended logs, when the workspace has a
// logging configuration.
func (l *Logger) Event(workspace, component, lvl, msg string) {
	if l == nil || l.sink == nil {
		return
	}
	if _, ok := l.settings(context.Background(), workspace); !ok {
		return
	}
	b, err := json.Marshal(vendedLine{WorkspaceID: workspace, Message: vendedMessage{Log: msg, Level: lvl}, Component: component})
	if err == nil {
		err = l.sink.write(workspace, append(b, '\n'))
	}
	if err != nil {
		l.metrics.writeFailures.Inc()
		level.Warn(l.logger).Log("msg", "cannot write a vended log line", "workspace", workspace, "err", err)
		return
	}
	l.metrics.logged.Inc()
}

// settings returns a workspace's settings, looked up at most every
// refreshPeriod.
func (l *Logger) settings(ctx context.Context, workspace string) (Settings, bool) {
	now := l.now()
	l.mu.Lock()
	c, hit := l.cache[workspace]
	l.mu.Unlock()
	if hit && now.Sub(c.fetched) < refreshPeriod {
		return c.s, c.ok
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
	s, ok, err := l.configs.QueryLogging(lctx, workspace)
	cancel()
	if err != nil {
		l.metrics.lookupFailures.Inc()
		level.Warn(l.logger).Log("msg", "cannot read the workspace's logging configuration", "workspace", workspace, "err", err)
		// The last settings stand until the next try.
		s, ok = c.s, c.ok
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.cache) >= maxCached {
		for w, e := range l.cache {
			if now.Sub(e.fetched) >= refreshPeriod {
				delete(l.cache, w)
			}
		}
		if len(l.cache) >= maxCached {
			clear(l.cache)
		}
	}
	l.cache[workspace] = cached{s: s, ok: ok, fetched: now}
	return s, ok
}

// Enabled tells whether the workspace's queries are logged: it has a
// query logging configuration and the sink is not none.
func (l *Logger) Enabled(ctx context.Context, workspace string) bool {
	if l == nil || l.sink == nil {
		return false
	}
	_, ok := l.settings(ctx, workspace)
	return ok
}

// Forget drops what the logger holds for a deleted workspace: its cached
// settings and its open file. Its log file stays.
func (l *Logger) Forget(workspace string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.cache, workspace)
	l.mu.Unlock()
	if l.sink != nil {
		l.sink.forget(workspace)
	}
}

// Close closes the open log files.
func (l *Logger) Close() error {
	if l == nil || l.sink == nil {
		return nil
	}
	return l.sink.close()
}
