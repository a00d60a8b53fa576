package querier

import (
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// fetchSet turns one replica's chunk series into series of samples. Each
// series' chunks are collected and counted against the query's limits when
// the set moves to it, so that a read over a limit fails the series set,
// whose error PromQL and the API report, rather than an iterator halfway
// through a series.
type fetchSet struct {
	set     storage.ChunkSeriesSet
	limiter *queryLimiter

	cur    storage.Series
	err    error
	it     chunks.Iterator
	primed bool // Next was called ahead, by prime
	ok     bool // and its result

	// What the set charged the limiter, to give back if it is not used.
	chunks, samples, bytes int
}

// refund gives back to the limiter what the set charged it.
func (s *fetchSet) refund() {
	_ = s.limiter.addChunks(-s.chunks, -s.samples, -s.bytes) // giving back never exceeds a limit
	s.chunks, s.samples, s.bytes = 0, 0, 0
}

func newFetchSet(set storage.ChunkSeriesSet, limiter *queryLimiter) *fetchSet {
	return &fetchSet{set: set, limiter: limiter}
}

// prime moves to the first series ahead of the caller, so that a replica
// that cannot answer fails here (and counts against the quorum) rather than
// once the replicas' sets are merged.
func (s *fetchSet) prime() error {
	s.ok, s.primed = s.next(), true
	return s.Err()
}

func (s *fetchSet) Next() bool {
	if s.primed {
		s.primed = false
		return s.ok
	}
	return s.next()
}

func (s *fetchSet) next() bool {
	if s.err != nil || !s.set.Next() {
		return false
	}
	cs := s.set.At()
	s.it = cs.Iterator(s.it)
	var chks []chunkenc.Iterable
	samples, bytes := 0, 0
	for s.it.Next() {
		c := s.it.At().Chunk
		chks = append(chks, c)
		samples += c.NumSamples()
		bytes += len(c.Bytes())
	}
	if err := s.it.Err(); err != nil {
		s.err = err
		return false
	}
	s.chunks, s.samples, s.bytes = s.chunks+len(chks), s.samples+samples, s.bytes+bytes
	if err := s.limiter.addChunks(len(chks), samples, bytes); err != nil {
		s.err = err
		return false
	}
	s.cur = &chunkedSeries{lset: cs.Labels(), chunks: chks}
	return true
}

func (s *fetchSet) At() storage.Series { return s.cur }

func (s *fetchSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.set.Err()
}

func (s *fetchSet) Warnings() annotations.Annotations { return s.set.Warnings() }

// limitedSet counts the distinct series a query reads.
type limitedSet struct {
	storage.SeriesSet
	limiter *queryLimiter
	err     error
}

func (s *limitedSet) Next() bool {
	if s.err != nil || !s.SeriesSet.Next() {
		return false
	}
	if err := s.limiter.addSeries(); err != nil {
		s.err = err
		return false
	}
	return true
}

func (s *limitedSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}

// chunkedSeries is a series over its chunks. Chunks may reach outside the
// query's range; PromQL reads only the samples of the range it selects.
type chunkedSeries struct {
	lset   labels.Labels
	chunks []chunkenc.Iterable
}

func (s *chunkedSeries) Labels() labels.Labels { return s.lset }

func (s *chunkedSeries) Iterator(reuse chunkenc.Iterator) chunkenc.Iterator {
	return storage.ChainSampleIteratorFromIterables(reuse, s.chunks)
}
