package ingester

import (
	"errors"
	"math"
	"os"
	"runtime/debug"
	runtimemetrics "runtime/metrics"
	"sync/atomic"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// errMemoryGuard marks an append refused because the ingester's live heap
// reached -ingester.instance-limits.memory-limit-new-series-ratio of its
// memory limit.
var errMemoryGuard = errors.New("ingester memory nearly full")

// liveHeapMetric is the heap the previous garbage collection found live.
// Unlike the heap's size it does not swing with each collection: it grows
// with the series held, and a reading near the memory limit means the
// collector is about to run without end.
const liveHeapMetric = "/gc/heap/live:bytes"

// memGuard refuses new series once the process's live heap reaches a
// fraction of its memory limit, so that no workspace can grow an ingester
// until it is killed; existing series keep taking samples. The heap is
// read once a second by the limits loop, never on the write path.
type memGuard struct {
	limit     int64   // the process's memory limit, bytes
	ratio     float64 // of limit
	threshold uint64  // live heap bytes from which new series are refused
	heap      atomic.Uint64
	read      func() uint64 // tests replace it
}

// newMemGuard returns the guard of a process with the given memory limit,
// or nil when there is no limit or ratio.
func newMemGuard(limit int64, ratio float64) *memGuard {
	if limit <= 0 || ratio <= 0 {
		return nil
	}
	return &memGuard{limit: limit, ratio: ratio, threshold: uint64(float64(limit) * ratio), read: liveHeapReader()}
}

// liveHeapReader returns a reader of the live heap; its result must be
// used by one goroutine at a time.
func liveHeapReader() func() uint64 {
	s := []runtimemetrics.Sample{{Name: liveHeapMetric}}
	return func() uint64 {
		runtimemetrics.Read(s)
		if s[0].Value.Kind() != runtimemetrics.KindUint64 {
			return 0
		}
		return s[0].Value.Uint64()
	}
}

func (g *memGuard) sample() { g.heap.Store(g.read()) }

// full reports whether new series are refused; a nil guard never refuses.
func (g *memGuard) full() bool { return g != nil && g.heap.Load() >= g.threshold }

func (g *memGuard) error(refused int) error {
	return apierror.New(apierror.Unavailable, apierror.IDIngesterMemoryLimit,
		"%d sample(s) of new series rejected because the ingester's live heap (%d bytes) reached %g of its memory limit of %d bytes (-ingester.instance-limits.memory-limit-new-series-ratio, -ingester.memory-limit); samples of existing series were stored; retry later or add ingesters",
		refused, g.heap.Load(), g.ratio, g.limit)
}

// heapBytes and thresholdBytes are the guard's metrics; 0 without a guard.
func (g *memGuard) heapBytes() float64 {
	if g == nil {
		return 0
	}
	return float64(g.heap.Load())
}

func (g *memGuard) thresholdBytes() float64 {
	if g == nil {
		return 0
	}
	return float64(g.threshold)
}

// memoryLimit is the memory limit the process runs with: the GOMEMLIMIT
// environment variable's when it is set (it wins, see ApplyRuntime),
// otherwise -ingester.memory-limit. 0: none.
func (c *Config) memoryLimit() int64 {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		if l := debug.SetMemoryLimit(-1); l < math.MaxInt64 {
			return l
		}
		return 0
	}
	return int64(min(uint64(c.MemoryLimit), math.MaxInt64))
}
