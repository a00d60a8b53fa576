package frontend

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/cache"
	"github.com/prometheus/client_golang/prometheus"
)

// resultsCache holds the answers of range query legs. dskit's cache
// clients (memcached) and the in-process LRU both satisfy it.
type resultsCache interface {
	GetMulti(ctx context.Context, keys []string, opts ...cache.Option) map[string][]byte
	SetMultiAsync(data map[string][]byte, ttl time.Duration)
	Stop()
}

func newResultsCache(cfg CacheConfig, reg prometheus.Registerer, logger log.Logger) (resultsCache, error) {
	switch cfg.Backend {
	case BackendInMemory:
		return newLRU(cfg.MaxSizeBytes, time.Now), nil
	case BackendMemcached:
		return cache.NewMemcachedClientWithConfig(logger, "query-frontend-results", cfg.Memcached,
			prometheus.WrapRegistererWithPrefix("vigil_query_frontend_results_cache_", reg))
	default:
		return nil, nil
	}
}

// lru is an in-process cache bounded by the bytes of its keys and values;
// the least recently used entries go first.
type lru struct {
	maxBytes int
	now      func() time.Time

	mu      sync.Mutex
	bytes   int
	entries map[string]*list.Element
	recency *list.List // front: most recently used
}

type lruEntry struct {
	key     string
	value   []byte
	expires time.Time
}

func newLRU(maxBytes int, now func() time.Time) *lru {
	return &lru{maxBytes: maxBytes, now: now, entries: map[string]*list.Element{}, recency: list.New()}
}

func (c *lru) GetMulti(_ context.Context, keys []string, _ ...cache.Option) map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]byte{}
	now := c.now()
	for _, k := range keys {
		el, ok := c.entries[k]
		if !ok {
			continue
		}
		e := el.Value.(*lruEntry)
		if now.After(e.expires) {
			c.removeLocked(el)
			continue
		}
		c.recency.MoveToFront(el)
		out[k] = e.value
	}
	return out
}

func (c *lru) SetMultiAsync(data map[string][]byte, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	expires := c.now().Add(ttl)
	for k, v := range data {
		size := len(k) + len(v)
		if size > c.maxBytes {
			continue
		}
		if el, ok := c.entries[k]; ok {
			c.removeLocked(el)
		}
		c.entries[k] = c.recency.PushFront(&lruEntry{key: k, value: v, expires: expires})
		c.bytes += size
		for c.bytes > c.maxBytes {
			c.removeLocked(c.recency.Back())
		}
	}
}

func (c *lru) removeLocked(el *list.Element) {
	e := c.recency.Remove(el).(*lruEntry)
	delete(c.entries, e.key)
	c.bytes -= len(e.key) + len(e.value)
}

func (c *lru) Stop() {}
