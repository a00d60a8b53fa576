package logging

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

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
		return nil, fmt.Errorf("log file %s: %w", path, err)
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
		return fmt.Errorf("log file %s: %w", r.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("log file %s: %w", r.path, err)
	}
	r.f, r.size = f, fi.Size()
	return nil
}

// Write appends one record (a line, say) in one write: a record is never
// split across files, and with O_APPEND the records of several processes
// sharing the file do not interleave.
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
		return fmt.Errorf("log file %s: %w", r.path, err)
	}
	r.f = nil
	_ = os.Remove(fmt.Sprintf("%s.%d", r.path, r.maxFiles))
	for i := r.maxFiles - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", r.path, i), fmt.Sprintf("%s.%d", r.path, i+1))
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return fmt.Errorf("log file %s: %w", r.path, err)
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
