package limits

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
	"gopkg.in/yaml.v3"
)

// OverridesConfig names the file of per-workspace overrides.
type OverridesConfig struct {
	File         string        `yaml:"overrides_file"`
	ReloadPeriod time.Duration `yaml:"overrides_reload_period"`
}

// RegisterFlags registers the overrides flags.
func (c *OverridesConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.File, "limits.overrides-file", "", "YAML file of per-workspace limits: `overrides: {<workspace-id>: {<limit>: <value>, ...}}`; limits a workspace does not name keep their defaults. Reloaded while running.")
	f.DurationVar(&c.ReloadPeriod, "limits.overrides-reload-period", 10*time.Second, "How often the overrides file is read again.")
}

// overridesFile is the file's shape.
type overridesFile struct {
	Overrides map[string]yaml.Node `yaml:"overrides"`
}

// ParseOverrides reads per-workspace overrides; each workspace's entry is
// applied over a copy of the defaults.
func ParseOverrides(body []byte, defaults Limits) (map[string]*Limits, error) {
	var f overridesFile
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	out := make(map[string]*Limits, len(f.Overrides))
	for id, node := range f.Overrides {
		// Decode each entry strictly over a copy of the defaults: unknown
		// limit names are errors, unnamed limits keep their defaults.
		raw, err := yaml.Marshal(&node)
		if err != nil {
			return nil, err
		}
		l := defaults
		entry := yaml.NewDecoder(bytes.NewReader(raw))
		entry.KnownFields(true)
		if err := entry.Decode(&l); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("overrides of workspace %s: %w", id, err)
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("overrides of workspace %s: %w", id, err)
		}
		out[id] = &l
	}
	return out, nil
}

// Loader keeps Overrides in step with the overrides file. A file that fails
// to parse leaves the last good overrides in force.
type Loader struct {
	services.Service
	cfg       OverridesConfig
	overrides *Overrides
	logger    log.Logger
}

// NewLoader returns a service that loads cfg.File into o at start and then
// every cfg.ReloadPeriod. With no file it does nothing.
func NewLoader(cfg OverridesConfig, o *Overrides, logger log.Logger) *Loader {
	l := &Loader{cfg: cfg, overrides: o, logger: logger}
	l.Service = services.NewTimerService(cfg.ReloadPeriod, l.load, l.reload, nil)
	return l
}

func (l *Loader) load(context.Context) error {
	if l.cfg.File == "" {
		return nil
	}
	body, err := os.ReadFile(l.cfg.File)
	if err != nil {
		return fmt.Errorf("read overrides file: %w", err)
	}
	m, err := ParseOverrides(body, l.overrides.defaults)
	if err != nil {
		return fmt.Errorf("parse overrides file %s: %w", l.cfg.File, err)
	}
	l.overrides.set(m)
	return nil
}

func (l *Loader) reload(ctx context.Context) error {
	if err := l.load(ctx); err != nil {
		level.Warn(l.logger).Log("msg", "keeping the previous overrides", "err", err)
	}
	return nil
}

// current returns the per-workspace map in force.
func (o *Overrides) current() map[string]*Limits {
	if p := o.perWorkspace.Load(); p != nil {
		return *p
	}
	return nil
}

func (o *Overrides) set(m map[string]*Limits) { o.perWorkspace.Store(&m) }
