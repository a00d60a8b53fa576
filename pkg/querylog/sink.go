package querylog

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// sink takes the lines of logged queries.
type sink interface {
	// write appends one line (ending in '\n') to the workspace's log.
	write(workspace string, line []byte) error
	// forget closes what the sink holds open for the workspace.
	forget(workspace string)
	close() error
}

// writerSink writes every workspace's lines to one writer (stdout), each
// line whole.
type writerSink struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *writerSink) write(_ string, line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.Write(line)
	return err
}

func (*writerSink) forget(string) {}
func (*writerSink) close() error  { return nil }

// fileSink appends each workspace's lines to <dir>/<workspace>.log, opened
// when first written; at most max files are open, the least recently
// written closed first. A file about to grow past maxBytes becomes
// <workspace>.log.1 (replacing the previous one), and a new one starts.
type fileSink struct {
	dir      string
	max      int
	maxBytes int64

	mu    sync.Mutex
	open  map[string]*list.Element // of *openFile
	order *list.List               // front: most recently written
}

type openFile struct {
	workspace string
	f         *os.File
	size      int64
}

func newFileSink(dir string, maxOpen int, maxBytes int64) *fileSink {
	return &fileSink{dir: dir, max: maxOpen, maxBytes: maxBytes, open: map[string]*list.Element{}, order: list.New()}
}

func (s *fileSink) write(workspace string, line []byte) error {
	// The workspace ID names the file: only a valid one may.
	if err := tenant.ValidID(workspace); err != nil {
		return fmt.Errorf("query log of %q: %w", workspace, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.open[workspace]
	if ok {
		s.order.MoveToFront(el)
	} else {
		of, err := s.openFile(workspace)
		if err != nil {
			return err
		}
		for s.order.Len() >= s.max {
			s.closeElement(s.order.Back())
		}
		el = s.order.PushFront(of)
		s.open[workspace] = el
	}
	of := el.Value.(*openFile)
	if of.size > 0 && of.size+int64(len(line)) > s.maxBytes {
		_ = s.closeElement(el)
		name := filepath.Join(s.dir, workspace+".log")
		if err := os.Rename(name, name+".1"); err != nil {
			return fmt.Errorf("rotate query log: %w", err)
		}
		var err error
		if of, err = s.openFile(workspace); err != nil {
			return err
		}
		el = s.order.PushFront(of)
		s.open[workspace] = el
	}
	// One write of a whole line to a file opened with O_APPEND: lines of
	// several processes sharing the directory do not interleave.
	n, err := of.f.Write(line)
	of.size += int64(n)
	return err
}

func (s *fileSink) openFile(workspace string) (*openFile, error) {
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return nil, fmt.Errorf("create query log directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, workspace+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open query log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open query log: %w", err)
	}
	return &openFile{workspace: workspace, f: f, size: st.Size()}, nil
}

// closeElement closes one open file; s.mu is held.
func (s *fileSink) closeElement(el *list.Element) error {
	of := s.order.Remove(el).(*openFile)
	delete(s.open, of.workspace)
	return of.f.Close()
}

func (s *fileSink) forget(workspace string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.open[workspace]; ok {
		_ = s.closeElement(el)
	}
}

func (s *fileSink) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for s.order.Len() > 0 {
		errs = append(errs, s.closeElement(s.order.Back()))
	}
	return errors.Join(errs...)
}
