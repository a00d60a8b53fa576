package ingester

import (
	"strings"
	"sync"
)

// metricSeriesShards spreads the per-metric counts over locks, so that
// concurrent pushes creating series of different metrics rarely meet.
const metricSeriesShards = 16

// metricSeries counts a TSDB's series per metric name, from its first
// series on (WAL replay included), so that a per-metric limit turned on at
// runtime holds at once. Its zero value is ready to use.
type metricSeries struct {
	shards [metricSeriesShards]struct {
		mu sync.Mutex
		n  map[string]int64
	}
}

// shardOf hashes a metric name (FNV-1a): cheap for short names, and no
// seed to set up.
func shardOf(name string) int {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return int(h % metricSeriesShards)
}

func (m *metricSeries) count(name string) int64 {
	s := &m.shards[shardOf(name)]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[name]
}

func (m *metricSeries) add(name string, delta int64) {
	s := &m.shards[shardOf(name)]
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.n[name]
	n += delta
	if n <= 0 {
		delete(s.n, name)
		return
	}
	if !ok {
		if s.n == nil {
			s.n = map[string]int64{}
		}
		// The name aliases the series' labels: a copy keeps them from
		// outliving the series.
		name = strings.Clone(name)
	}
	s.n[name] = n
}
