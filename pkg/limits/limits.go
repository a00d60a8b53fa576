// Package limits holds the per-workspace limits and their overrides. Every
// component that enforces a limit declares a narrow interface for the few
// accessors it uses; only this package knows the whole set.
package limits

import (
	"flag"
	"fmt"
	"sync/atomic"
	"time"
)

// Limits are the limits of one workspace. The defaults mirror AMP's quotas.
type Limits struct {
	// AMP quota: labels per series, 70.
	MaxLabelNamesPerSeries int `yaml:"max_label_names_per_series"`
	// AMP quota: label set size, 7 KB.
	MaxLabelsSizeBytes  int `yaml:"max_labels_size_bytes"`
	MaxLabelNameLength  int `yaml:"max_label_name_length"`
	MaxLabelValueLength int `yaml:"max_label_value_length"`
	// Samples stamped later than now plus this are refused: one of them
	// would move the TSDB head forward and get every normal sample of the
	// workspace refused as too old.
	CreationGracePeriod time.Duration `yaml:"creation_grace_period"`
}

// RegisterFlags registers the default limits.
func (l *Limits) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&l.MaxLabelNamesPerSeries, "validation.max-label-names-per-series", 70, "Maximum number of labels per series, including the metric name. AMP quota: 70 labels per series.")
	f.IntVar(&l.MaxLabelsSizeBytes, "validation.max-labels-size-bytes", 7*1024, "Maximum combined size in bytes of the label names and values of one series. AMP quota: 7 KB label set size. 0 disables the check.")
	f.IntVar(&l.MaxLabelNameLength, "validation.max-label-name-length", 1024, "Maximum length in bytes of a label name.")
	f.IntVar(&l.MaxLabelValueLength, "validation.max-label-value-length", 2048, "Maximum length in bytes of a label value.")
	f.DurationVar(&l.CreationGracePeriod, "validation.creation-grace-period", 10*time.Minute, "Samples, histograms and exemplars stamped later than now plus this are refused (reason too_far_in_future); the rest of the request is stored.")
}

// Validate checks the limits for values that cannot work.
func (l *Limits) Validate() error {
	if l.MaxLabelNamesPerSeries <= 0 {
		return fmt.Errorf("validation.max-label-names-per-series must be positive, got %d", l.MaxLabelNamesPerSeries)
	}
	if l.MaxLabelNameLength <= 0 || l.MaxLabelValueLength <= 0 {
		return fmt.Errorf("label name and value length limits must be positive")
	}
	if l.CreationGracePeriod < 0 {
		return fmt.Errorf("validation.creation-grace-period must not be negative")
	}
	return nil
}

// Overrides answers per-workspace limits: a workspace's own entry when it has
// one, otherwise the defaults.
type Overrides struct {
	defaults     Limits
	perWorkspace atomic.Pointer[map[string]*Limits]
}

// NewOverrides returns Overrides over the defaults and the per-workspace
// entries (which may be nil).
func NewOverrides(defaults Limits, perWorkspace map[string]*Limits) (*Overrides, error) {
	if err := defaults.Validate(); err != nil {
		return nil, err
	}
	for id, l := range perWorkspace {
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("overrides of workspace %s: %w", id, err)
		}
	}
	o := &Overrides{defaults: defaults}
	o.set(perWorkspace)
	return o, nil
}

func (o *Overrides) get(workspace string) *Limits {
	if l, ok := o.current()[workspace]; ok && l != nil {
		return l
	}
	return &o.defaults
}

// MaxLabelNamesPerSeries is the most labels one series may have.
func (o *Overrides) MaxLabelNamesPerSeries(workspace string) int {
	return o.get(workspace).MaxLabelNamesPerSeries
}

// MaxLabelsSizeBytes is the most bytes of label names and values one series may have; 0 means no limit.
func (o *Overrides) MaxLabelsSizeBytes(workspace string) int {
	return o.get(workspace).MaxLabelsSizeBytes
}

// MaxLabelNameLength is the longest label name accepted.
func (o *Overrides) MaxLabelNameLength(workspace string) int {
	return o.get(workspace).MaxLabelNameLength
}

// MaxLabelValueLength is the longest label value accepted.
func (o *Overrides) MaxLabelValueLength(workspace string) int {
	return o.get(workspace).MaxLabelValueLength
}

// CreationGracePeriod is how far ahead of now a sample may be stamped.
func (o *Overrides) CreationGracePeriod(workspace string) time.Duration {
	return o.get(workspace).CreationGracePeriod
}
