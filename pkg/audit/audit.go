// Package audit keeps the audit trail: JSON lines written to a sink, by
// default a file rotated by size.
package audit

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
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
	return OpenFile(path, cfg.MaxFileSize, cfg.MaxFiles)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// File is an append-only file rotated by size: at maxSize it becomes
// <path>.1, the older ones shift up, and the one past maxFiles goes.
type File struct {
	path     string
	maxSize  int64
	maxFiles int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenFile opens (or creates) the file at path for appending.
func OpenFile(path string, maxSize int64, maxFiles int) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("audit file: %w", err)
	}
	r := &File{path: path, maxSize: maxSize, maxFiles: maxFiles}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *File) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("audit file: %w", err)
	}
	r.f, r.size = f, fi.Size()
	return nil
}

// Write appends one record; a record is never split across files.
func (r *File) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	if r.size > 0 && r.size+int64(len(p)) > r.maxSize {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

func (r *File) rotate() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("audit file: %w", err)
	}
	r.f = nil
	_ = os.Remove(fmt.Sprintf("%s.%d", r.path, r.maxFiles))
	for i := r.maxFiles - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", r.path, i), fmt.Sprintf("%s.%d", r.path, i+1))
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return fmt.Errorf("audit file: %w", err)
	}
	return r.open()
}

// Close closes the file.
func (r *File) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
