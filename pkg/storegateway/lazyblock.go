package storegateway

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/tsdb/tombstones"
)

// lazyBlock is a block served from object storage: its index through a
// lazyIndex, its chunks through a remoteChunks per query.
type lazyBlock struct {
	meta  tsdb.BlockMeta
	index *lazyIndex
	ir    *index.Reader
}

// openLazyBlock opens the index reader over li, which reads the index
// header (table of contents, symbols, postings offset table).
func openLazyBlock(meta tsdb.BlockMeta, li *lazyIndex) (_ *lazyBlock, err error) {
	defer recoverFetch(&err)
	toc, err := index.NewTOCFromByteSlice(li)
	if err != nil {
		return nil, err
	}
	if toc.Symbols >= toc.Series || toc.Series > uint64(li.size) {
		return nil, fmt.Errorf("index TOC places the symbol table at [%d, %d) in %d bytes", toc.Symbols, toc.Series, li.size)
	}
	li.symStart, li.symEnd = int(toc.Symbols), int(toc.Series)
	ir, err := index.NewReader(li, index.DecodePostingsRaw)
	if err != nil {
		return nil, err
	}
	return &lazyBlock{meta: meta, index: li, ir: ir}, nil
}

func (b *lazyBlock) Close() error { return errors.Join(b.ir.Close(), b.index.Close()) }

// reader is the tsdb.BlockReader of one query over b.
type reader struct {
	b      *lazyBlock
	chunks *remoteChunks
}

func (r reader) Index() (tsdb.IndexReader, error)       { return blockIndex{r.b.ir}, nil }
func (r reader) Chunks() (tsdb.ChunkReader, error)      { return r.chunks, nil }
func (r reader) Tombstones() (tombstones.Reader, error) { return tombstones.NewMemTombstones(), nil }
func (r reader) Meta() tsdb.BlockMeta                   { return r.b.meta }
func (r reader) Size() int64                            { return 0 }

// blockIndex is a block's index.Reader with what the TSDB's own block
// adds: label names and values restricted by matchers. Closing it leaves
// the shared reader open.
type blockIndex struct{ *index.Reader }

func (r blockIndex) Close() error { return nil }

func (r blockIndex) SortedLabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, error) {
	if len(ms) == 0 {
		return r.Reader.SortedLabelValues(ctx, name, hints)
	}
	values, err := r.LabelValues(ctx, name, hints, ms...)
	slices.Sort(values)
	return values, err
}

func (r blockIndex) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, error) {
	if len(ms) == 0 {
		return r.Reader.LabelValues(ctx, name, hints)
	}
	p, err := tsdb.PostingsForMatchers(ctx, r, ms...)
	if err != nil {
		return nil, err
	}
	seen := map[string]struct{}{}
	var b labels.ScratchBuilder
	var chks []chunks.Meta
	for p.Next() {
		if err := r.Series(p.At(), &b, &chks); err != nil {
			return nil, err
		}
		if v := b.Labels().Get(name); v != "" {
			seen[v] = struct{}{}
		}
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	values := make([]string, 0, len(seen))
	for v := range seen {
		values = append(values, v)
	}
	if hints != nil && hints.Limit > 0 && len(values) > hints.Limit {
		slices.Sort(values)
		values = values[:hints.Limit]
	}
	return values, nil
}

func (r blockIndex) LabelNames(ctx context.Context, ms ...*labels.Matcher) ([]string, error) {
	if len(ms) == 0 {
		return r.Reader.LabelNames(ctx)
	}
	p, err := tsdb.PostingsForMatchers(ctx, r, ms...)
	if err != nil {
		return nil, err
	}
	return r.Reader.LabelNamesFor(ctx, p)
}
