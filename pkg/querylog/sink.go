package querylog

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/vigil-metrics/vigil/pkg/logging"
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
	f         *logging.File
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
	// One write of a whole line to a file opened with O_APPEND: lines of
	// several processes sharing the directory do not interleave.
	_, err := el.Value.(*openFile).f.Write(line)
	return err
}

func (s *fileSink) openFile(workspace string) (*openFile, error) {
	f, err := logging.OpenFile(filepath.Join(s.dir, workspace+".log"), s.maxBytes, 1)
	if err != nil {
		return nil, fmt.Errorf("open query log: %w", err)
	}
	return &openFile{workspace: workspace, f: f}, nil
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
