package ingester

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// refCache remembers, per workspace, the TSDB reference and the labels of
// each series seen in a push, keyed by the labels' hash. A hit lets Push
// append without allocating a labels.Labels per series (it builds them in a
// reused scratch buffer and passes the cached copy) and lets the head find
// the series by reference.
//
// A cached reference may go stale when the head garbage-collects the series;
// the head then falls back to a lookup by labels, which are always passed
// along, so a stale entry costs a lookup and is never wrong.
type refCache struct {
	shards [refCacheShards]refShard
}

const refCacheShards = 64

type refShard struct {
	mu sync.Mutex
	m  map[uint64]*refEntry
}

type refEntry struct {
	ref      storage.SeriesRef
	lset     labels.Labels
	lastUsed atomic.Int64 // unix seconds
}

func newRefCache() *refCache {
	c := &refCache{}
	for i := range c.shards {
		c.shards[i].m = map[uint64]*refEntry{}
	}
	return c
}

// get returns the cached entry for lset (whose hash is h), if any.
func (c *refCache) get(h uint64, lset labels.Labels, now int64) (*refEntry, bool) {
	s := &c.shards[h%refCacheShards]
	s.mu.Lock()
	e, ok := s.m[h]
	s.mu.Unlock()
	if !ok || !labels.Equal(e.lset, lset) {
		return nil, false
	}
	if e.lastUsed.Load() != now {
		e.lastUsed.Store(now)
	}
	return e, true
}

// put caches the reference and labels of a series; on a hash collision the
// newer series wins.
func (c *refCache) put(h uint64, ref storage.SeriesRef, lset labels.Labels, now int64) {
	e := &refEntry{ref: ref, lset: lset}
	e.lastUsed.Store(now)
	s := &c.shards[h%refCacheShards]
	s.mu.Lock()
	s.m[h] = e
	s.mu.Unlock()
}

// purge drops the entries not used since cutoff (unix seconds), so that the
// cache does not keep the labels of series that stopped being written.
func (c *refCache) purge(cutoff int64) int {
	removed := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for h, e := range s.m {
			if e.lastUsed.Load() < cutoff {
				delete(s.m, h)
				removed++
			}
		}
		s.mu.Unlock()
	}
	return removed
}
