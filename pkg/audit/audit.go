// Package audit keeps the audit trail: JSON lines written to a sink, by
// default a file rotated by size.
package audit

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vigil-metrics/vigil/pkg/logging"
)

// Sinks.
const (
	SinkFile   = "file"
	SinkStderr = "stderr"
	SinkNone   = "none"
)

// Config configures the audit trail.
type Config struct {
	Sink        string `yaml:"sink"`
	File        string `yaml:"file"`
	MaxFileSize int64  `yaml:"max_file_size_bytes"`
	MaxFiles    int    `yaml:"max_files"`
}

// RegisterFlags registers the audit flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Sink, "audit.sink", SinkFile, "Where the audit trail goes: one JSON line in CloudTrail's shape per control-plane call and per refused data-plane call. file: -audit.file, rotated by size; stderr; none.")
	f.StringVar(&c.File, "audit.file", "", "File of the audit trail with -audit.sink=file. Empty: audit.log in -data-dir.")
	f.Int64Var(&c.MaxFileSize, "audit.max-file-size-bytes", 100<<20, "Size at which the audit file is rotated.")
	f.IntVar(&c.MaxFiles, "audit.max-files", 10, "Rotated audit files kept besides the current one (audit.log.1 is the newest).")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch c.Sink {
	case SinkFile, SinkStderr, SinkNone:
	default:
		return fmt.Errorf("unsupported audit.sink %q (supported: file, stderr, none)", c.Sink)
	}
	if c.MaxFileSize < 4096 || c.MaxFiles < 1 {
		return fmt.Errorf("audit.max-file-size-bytes must be at least 4096 and audit.max-files at least 1")
	}
	return nil
}

// Open returns the configured sink (nil for none); dataDir is where the
// file goes unless -audit.file names one.
func Open(cfg Config, dataDir string) (io.WriteCloser, error) {
	switch cfg.Sink {
	case SinkNone:
		return nil, nil
	case SinkStderr:
		return nopCloser{os.Stderr}, nil
	}
	path := cfg.File
	if path == "" {
		path = filepath.Join(dataDir, "audit.log")
	}
	return logging.OpenFile(path, cfg.MaxFileSize, cfg.MaxFiles)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
