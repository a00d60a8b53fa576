package seriespb

import (
	"errors"
	"fmt"
	"io"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// SendChunkSeries streams a sorted chunk series set as batches of at most
// maxSeries series and about maxBytes chunk bytes, each series with its
// chunks as the TSDB encodes them (none with skipChunks). send must marshal
// the batch before it returns: the batch is reused, and the chunk bytes are
// only valid while the set's querier is open.
func SendChunkSeries(ss storage.ChunkSeriesSet, skipChunks bool, maxSeries, maxBytes int, send func([]StreamingSeries) error) error {
	batch := make([]StreamingSeries, 0, maxSeries)
	size := 0
	var it chunks.Iterator
	for ss.Next() {
		series := ss.At()
		out := StreamingSeries{Labels: prompb.FromLabels(series.Labels(), nil)}
		if !skipChunks {
			it = series.Iterator(it)
			for it.Next() {
				m := it.At()
				data := m.Chunk.Bytes()
				out.Chunks = append(out.Chunks, Chunk{
					MinTimeMs: m.MinTime, MaxTimeMs: m.MaxTime, Encoding: int32(m.Chunk.Encoding()), Data: data,
				})
				size += len(data)
			}
			if err := it.Err(); err != nil {
				return err
			}
		}
		batch = append(batch, out)
		if len(batch) == maxSeries || size >= maxBytes {
			if err := send(batch); err != nil {
				return err
			}
			batch, size = batch[:0], 0
		}
	}
	if err := ss.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return send(batch)
	}
	return nil
}

// ToChunkSeries turns a streamed series into a chunk series over its
// decoded chunks; the chunk bytes are the message's own.
func ToChunkSeries(in *StreamingSeries) (storage.ChunkSeries, error) {
	b := labels.NewScratchBuilder(len(in.Labels))
	for _, l := range in.Labels {
		b.Add(l.Name, l.Value)
	}
	metas := make([]chunks.Meta, 0, len(in.Chunks))
	for _, c := range in.Chunks {
		chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
		if err != nil {
			return nil, fmt.Errorf("chunk of series %s: %w", b.Labels(), err)
		}
		metas = append(metas, chunks.Meta{MinTime: c.MinTimeMs, MaxTime: c.MaxTimeMs, Chunk: chk})
	}
	return &storage.ChunkSeriesEntry{
		Lset:            b.Labels(),
		ChunkIteratorFn: func(chunks.Iterator) chunks.Iterator { return storage.NewListChunkSeriesIterator(metas...) },
	}, nil
}

// NewChunkSeriesSet returns the series of a stream of batches as a set read
// as it is iterated: recv returns the next batch, and io.EOF after the last.
func NewChunkSeriesSet(recv func() ([]StreamingSeries, error)) storage.ChunkSeriesSet {
	return &streamSet{recv: recv}
}

type streamSet struct {
	recv  func() ([]StreamingSeries, error)
	batch []StreamingSeries
	cur   storage.ChunkSeries
	err   error
	done  bool
}

func (s *streamSet) Next() bool {
	for len(s.batch) == 0 {
		if s.done || s.err != nil {
			return false
		}
		batch, err := s.recv()
		if errors.Is(err, io.EOF) {
			s.done = true
			return false
		}
		if err != nil {
			s.err = err
			return false
		}
		s.batch = batch
	}
	cs, err := ToChunkSeries(&s.batch[0])
	s.batch = s.batch[1:]
	if err != nil {
		s.err = err
		return false
	}
	s.cur = cs
	return true
}

func (s *streamSet) At() storage.ChunkSeries           { return s.cur }
func (s *streamSet) Err() error                        { return s.err }
func (s *streamSet) Warnings() annotations.Annotations { return nil }
