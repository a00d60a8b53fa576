package storegateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"sync/atomic"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/thanos-io/objstore"

	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

// chunkStats counts what chunk reads cost one store-gateway.
type chunkStats struct {
	gets, bytes atomic.Int64
}

// remoteChunks reads a block's chunks from object storage by byte ranges.
// Chunks are laid out in series order and a query reads series in that
// order, so each read fetches readAhead bytes from the chunk on: the next
// chunks of the query usually come from the same range. One reader serves
// one query, from one goroutine. Each chunk is counted against the
// request's limits and, for a caller that keeps chunks, copied out of its
// range, so that a query keeping a few chunks does not keep every range
// they came from.
type remoteChunks struct {
	ctx       context.Context
	bkt       objstore.BucketReader
	block     string
	readAhead int
	stats     *chunkStats
	limits    *requestLimits
	// copyChunks: each chunk is copied out of its range, for a caller that
	// keeps chunks (the querier in process); a gRPC answer marshals them
	// at once, which copies them anyway.
	copyChunks bool

	// The last range fetched of each segment file.
	windows map[int]window
}

type window struct {
	off  int
	data []byte
}

func (w window) covers(off, n int) bool {
	return w.data != nil && off >= w.off && off+n <= w.off+len(w.data)
}

func (w window) slice(off, n int) []byte { return w.data[off-w.off : off-w.off+n] }

// ChunkOrIterable implements tsdb.ChunkReader.
func (r *remoteChunks) ChunkOrIterable(meta chunks.Meta) (chunkenc.Chunk, chunkenc.Iterable, error) {
	seq, off := chunks.BlockChunkRef(meta.Ref).Unpack()
	// A chunk is its data length (uvarint), its encoding, its data and a
	// CRC32: read the head first, then, if needed, the rest.
	head := binary.MaxVarintLen32 + chunks.ChunkEncodingSize
	w, err := r.fetch(seq, off, head)
	if err != nil {
		return nil, nil, err
	}
	b := w.data[off-w.off:]
	n, l := binary.Uvarint(b)
	if l <= 0 {
		return nil, nil, fmt.Errorf("block %s: bad chunk length at segment %d offset %d", r.block, seq, off)
	}
	total := l + chunks.ChunkEncodingSize + int(n)
	if w, err = r.fetch(seq, off, total); err != nil {
		return nil, nil, err
	}
	data := w.slice(off, total)
	if err := r.limits.addChunkBytes(int(n)); err != nil {
		return nil, nil, err
	}
	if r.copyChunks {
		data = append(make([]byte, 0, len(data)), data...)
	}
	chk, err := chunkenc.FromData(chunkenc.Encoding(data[l]), data[l+chunks.ChunkEncodingSize:])
	if err != nil {
		return nil, nil, fmt.Errorf("block %s: chunk at segment %d offset %d: %w", r.block, seq, off, err)
	}
	return chk, nil, nil
}

// fetch returns a window of segment seq holding [off, off+n), reading it
// (and readAhead bytes more) when the last one does not.
func (r *remoteChunks) fetch(seq, off, n int) (window, error) {
	if r.windows == nil {
		return window{}, fmt.Errorf("read chunks of block %s: the query is over", r.block)
	}
	if w := r.windows[seq]; w.covers(off, n) {
		return w, nil
	}
	name := path.Join(r.block, vtsdb.ChunksDirname, fmt.Sprintf("%06d", seq+1))
	length := int64(max(n, r.readAhead))
	rc, err := r.bkt.GetRange(r.ctx, name, int64(off), length)
	if err != nil {
		return window{}, fmt.Errorf("read chunks of block %s: %w", r.block, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return window{}, fmt.Errorf("read chunks of block %s: %w", r.block, err)
	}
	r.stats.gets.Add(1)
	r.stats.bytes.Add(int64(len(data)))
	w := window{off: off, data: data}
	if len(data) < n {
		return window{}, fmt.Errorf("read chunks of block %s: segment %d ends inside the chunk at offset %d", r.block, seq, off)
	}
	r.windows[seq] = w
	return w, nil
}

// Close implements tsdb.ChunkReader.
func (r *remoteChunks) Close() error {
	r.windows = nil
	return nil
}
