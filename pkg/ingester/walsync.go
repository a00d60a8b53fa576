package ingester

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/prometheus/prometheus/tsdb/wlog"
)

// WAL sync modes (-ingester.tsdb.wal-sync).
const (
	// WALSyncNone acknowledges a push once its samples are written to the
	// WAL file, before they reach the disk: they survive the process being
	// killed, not the host losing power. Prometheus and Mimir do the same.
	WALSyncNone = "none"
	// WALSyncAlways acknowledges a push only once its WAL records are on
	// disk (fsync). Concurrent pushes share one fsync (group commit).
	WALSyncAlways = "always"
)

// walSyncer makes a TSDB's WAL durable for the pushes that ask, sharing one
// fsync among all that ask while another is under way. A push that asks
// after its commit joins the next round, whose fsync starts after the ask,
// so that fsync covers the push's records.
type walSyncer struct {
	dir     string
	metrics *metrics
	fsync   func() error // tests replace it

	mu      sync.Mutex
	next    *syncRound // the round the next asks join; nil when none waits
	running bool       // a goroutine runs the rounds
	// failed is the first fsync error. After one, no later fsync can be
	// trusted (the kernel may have dropped the pages that failed, and
	// reports it once): every push fails until the TSDB is reopened.
	failed  error
	synced  int // the WAL segments before this one are on disk for good
	lastSeg int // the newest segment at the previous round
}

type syncRound struct {
	done chan struct{}
	err  error
}

func newWALSyncer(dir string, m *metrics) *walSyncer {
	s := &walSyncer{dir: dir, metrics: m, synced: -1, lastSeg: -1}
	s.fsync = s.fsyncSegments
	return s
}

// sync returns once every record written to the WAL before the call is on
// disk, or with the error that kept it from getting there.
func (s *walSyncer) sync() error {
	s.mu.Lock()
	if s.failed != nil {
		s.mu.Unlock()
		return s.failed
	}
	if s.next == nil {
		s.next = &syncRound{done: make(chan struct{})}
	}
	r := s.next
	if !s.running {
		s.running = true
		go s.run()
	}
	s.mu.Unlock()
	<-r.done
	return r.err
}

// run syncs round after round while pushes keep asking.
func (s *walSyncer) run() {
	for {
		s.mu.Lock()
		r := s.next
		s.next = nil
		if r == nil {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		start := time.Now()
		r.err = s.fsync()
		s.metrics.walSyncs.Inc()
		s.metrics.walSyncDuration.Observe(time.Since(start).Seconds())
		if r.err != nil {
			s.mu.Lock()
			if s.failed == nil {
				s.failed = fmt.Errorf("an earlier WAL fsync failed, so no later one can be trusted until the TSDB is reopened: %w", r.err)
			}
			s.mu.Unlock()
		}
		close(r.done)
	}
}

// fsyncSegments syncs the WAL segments written since the last round, and
// the directory when a segment was created, so that a new segment's name
// survives a power loss too. Segments deleted meanwhile (the head was
// compacted and the WAL truncated) need nothing: their records are in a
// checkpoint or a block, which the TSDB syncs itself.
func (s *walSyncer) fsyncSegments() error {
	first, last, err := wlog.Segments(s.dir)
	if err != nil {
		return fmt.Errorf("list wal segments: %w", err)
	}
	if last < 0 {
		return nil
	}
	from := max(s.synced, first)
	for seg := from; seg <= last; seg++ {
		if err := syncFile(wlog.SegmentName(s.dir, seg)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if last != s.lastSeg {
		if err := syncFile(s.dir); err != nil {
			return err
		}
	}
	// Segments before last are complete: synced now, they stay synced.
	s.synced, s.lastSeg = last, last
	return nil
}

func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	return f.Close()
}
