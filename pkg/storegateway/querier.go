package storegateway

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/go-kit/log/level"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	"github.com/vigil-metrics/vigil/pkg/storegateway/client"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

var _ client.StoreGateway = (*StoreGateway)(nil)

// maxBlocksPerRequest bounds the blocks one request may name.
const maxBlocksPerRequest = 10_000

// Querier returns a querier over the named blocks of the workspace of ctx
// that this store-gateway serves, read in the caller's goroutine: the
// querier of this very process calls it without gRPC. The labels and chunks
// of its series are the caller's own (see remoteChunks), and stay valid
// after Close, which releases the blocks.
func (g *StoreGateway) Querier(ctx context.Context, blockIDs []string, mint, maxt int64) (client.Querier, error) {
	ws, err := tenant.ID(ctx)
	if err == nil {
		err = tenant.ValidID(ws)
	}
	if err != nil {
		return nil, apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	q, err := g.open(ctx, ws, blockIDs, mint, maxt, true)
	if err != nil {
		return nil, err
	}
	return q, nil
}

// blockQuerier reads the requested blocks of one workspace this
// store-gateway serves, each through a tsdb block querier. Its reads run
// one at a time, and not concurrently with Close: each block's chunk reader
// keeps its read-ahead ranges unlocked.
type blockQuerier struct {
	ws         string
	mint, maxt int64
	limits     *requestLimits       // of every read, chunks and series
	querier    storage.ChunkQuerier // nil when no block is served
	served     []string
	release    []func()
	closeOnce  sync.Once
}

// open opens the requested blocks of workspace ws over [mint, maxt]. A
// block that cannot be opened (deleted meanwhile, object storage out of
// reach) is left out of served: the querier asks another replica for it.
// The series and chunk bytes of its reads are counted against the
// workspace's per-query limits.
func (g *StoreGateway) open(ctx context.Context, ws string, ids []string, mint, maxt int64, copyChunks bool) (*blockQuerier, error) {
	if len(ids) > maxBlocksPerRequest {
		return nil, apierror.New(apierror.BadData, apierror.IDInvalidQuery, "%d blocks requested, at most %d per request", len(ids), maxBlocksPerRequest)
	}
	lim := newRequestLimits(g.limits, ws, mint, maxt)
	q := &blockQuerier{ws: ws, mint: mint, maxt: maxt, limits: lim}
	var queriers []storage.ChunkQuerier
	for _, s := range ids {
		id, err := ulid.Parse(s)
		if err != nil {
			_ = q.Close()
			return nil, apierror.New(apierror.BadData, apierror.IDInvalidQuery, "invalid block ID %q", s)
		}
		b, release, err := g.blocks.acquire(ctx, ws, id)
		if err != nil {
			level.Warn(g.logger).Log("msg", "cannot serve block", "workspace", ws, "block", id, "err", err)
			continue
		}
		q.release = append(q.release, release)
		chunks := &remoteChunks{ctx: ctx, bkt: bucket.ForWorkspace(g.bkt, ws), block: s, readAhead: g.cfg.ChunkReadAhead, stats: &g.stats, limits: lim, copyChunks: copyChunks, windows: map[int]window{}}
		bq, err := tsdb.NewBlockChunkQuerier(reader{b: b, chunks: chunks}, mint, maxt)
		if err != nil {
			level.Warn(g.logger).Log("msg", "cannot query block", "workspace", ws, "block", id, "err", err)
			continue
		}
		queriers = append(queriers, bq)
		q.served = append(q.served, s)
	}
	if len(queriers) > 0 {
		// A series in several blocks gets every block's chunks; the querier
		// merges overlapping samples.
		// Every block is a primary: a block that fails its read fails the
		// call, never becomes a warning beside a smaller answer.
		q.querier = storage.NewMergeChunkQuerier(queriers, nil, storage.NewConcatenatingChunkSeriesMerger())
	}
	return q, nil
}

func (q *blockQuerier) Served() []string { return q.served }

// Select returns the sorted series of the blocks matching ms, each with the
// blocks' own chunks: trimming them to the range would re-encode every
// edge chunk, and the caller reads only the samples of its range.
func (q *blockQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	ss, err := q.selectSet(ctx, hints, ms)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	return ss
}

// selectSet is Select with the errors of reading the postings returned, not
// in the set, where it can tell them: over one block, whose postings are
// read here, a block whose index cannot be read fails the call before any
// block is claimed. Over several, the merge reads them with the first
// series; a caller trusts Served only once that series was read.
func (q *blockQuerier) selectSet(ctx context.Context, hints *storage.SelectHints, ms []*labels.Matcher) (_ storage.ChunkSeriesSet, err error) {
	defer recoverFetch(&err)
	if q.querier == nil {
		return storage.EmptyChunkSeriesSet(), nil
	}
	h := &storage.SelectHints{Start: q.mint, End: q.maxt, DisableTrimming: true}
	if hints != nil {
		h.Start, h.End = max(h.Start, hints.Start), min(h.End, hints.End)
		if hints.Func == seriesFunc {
			h.Func = seriesFunc
		}
	}
	ss := q.querier.Select(ctx, true, h, ms...)
	if err := ss.Err(); err != nil {
		return nil, err
	}
	return &fetchGuardSet{ChunkSeriesSet: ss, limits: q.limits, labelsOnly: h.Func == seriesFunc}, nil
}

func (q *blockQuerier) LabelNames(ctx context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.labels(func() ([]string, annotations.Annotations, error) { return q.querier.LabelNames(ctx, nil, ms...) })
}

func (q *blockQuerier) LabelValues(ctx context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.labels(func() ([]string, annotations.Annotations, error) { return q.querier.LabelValues(ctx, name, nil, ms...) })
}

// labels returns the sorted, distinct strings of read, copied: they point
// into the blocks' index, which may be unmapped once the blocks are
// released.
func (q *blockQuerier) labels(read func() ([]string, annotations.Annotations, error)) (_ []string, _ annotations.Annotations, err error) {
	defer recoverFetch(&err)
	if q.querier == nil {
		return nil, nil, nil
	}
	out, warnings, err := read()
	if err == nil {
		err = warningsErr(warnings)
	}
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(out)
	out = slices.Compact(out)
	for i, v := range out {
		out[i] = strings.Clone(v)
	}
	return out, nil, nil
}

// Close releases the blocks. It may be called more than once.
func (q *blockQuerier) Close() error {
	q.closeOnce.Do(func() {
		if q.querier != nil {
			_ = q.querier.Close()
		}
		for _, r := range q.release {
			r()
		}
	})
	return nil
}

// warningsErr turns the warnings of a read into its error: a store-gateway
// answers completely or fails.
func warningsErr(w annotations.Annotations) error {
	if len(w) == 0 {
		return nil
	}
	return errors.Join(w.AsErrors()...)
}

// fetchGuardSet is the series set of a select: it fails once it reached
// more series than the workspace's limits allow, or when a block's index
// cannot be read from object storage (which lazyIndex reports by a panic).
// Its warnings are errors.
type fetchGuardSet struct {
	storage.ChunkSeriesSet
	limits *requestLimits
	err    error
	// labelsOnly: the series come without chunks (the blocks' queriers
	// would read them when iterated).
	labelsOnly bool
}

func (s *fetchGuardSet) At() storage.ChunkSeries {
	cs := s.ChunkSeriesSet.At()
	if s.labelsOnly {
		return &storage.ChunkSeriesEntry{Lset: cs.Labels(), ChunkIteratorFn: func(chunks.Iterator) chunks.Iterator { return storage.NewListChunkSeriesIterator() }}
	}
	return cs
}

func (s *fetchGuardSet) Next() bool {
	if s.err != nil {
		return false
	}
	ok, err := s.next()
	if err != nil {
		s.err = err
		return false
	}
	return ok
}

func (s *fetchGuardSet) next() (_ bool, err error) {
	defer recoverFetch(&err)
	if !s.ChunkSeriesSet.Next() {
		return false, warningsErr(s.ChunkSeriesSet.Warnings())
	}
	return true, s.limits.addSeries()
}

func (s *fetchGuardSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.ChunkSeriesSet.Err()
}

func (s *fetchGuardSet) Warnings() annotations.Annotations { return nil }
