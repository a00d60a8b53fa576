package ingester

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// SeriesFunc is the SelectHints.Func of a select that wants labels only,
// as the series API's does: no chunk is read.
const SeriesFunc = "series"

// Querier returns a storage.ChunkQuerier over the TSDB of the workspace in
// ctx for the inclusive range [mint, maxt]: the TSDB's own chunks, which may
// reach outside the range. A select whose hints' Func is SeriesFunc gets
// series without chunks. The caller must Close the querier; until then the
// TSDB stays open. A workspace with no data here gets an empty querier.
func (i *Ingester) Querier(ctx context.Context, mint, maxt int64) (storage.ChunkQuerier, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	u, err := i.acquire(ctx, id, false)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return storage.NoopChunkedQuerier(), nil
	}
	return &heldQuerier{u: u, mint: mint, maxt: maxt}, nil
}

// heldQuerier keeps its workspace's TSDB open until it is closed. It opens
// the TSDB's chunk querier, or its label-only querier, on first use.
type heldQuerier struct {
	u          *userDB
	mint, maxt int64

	mu      sync.Mutex
	chunksQ storage.ChunkQuerier
	labelsQ storage.Querier
	closed  bool
}

// errQuerierClosed refuses a select on a closed querier, which holds its
// TSDB no longer.
var errQuerierClosed = errors.New("querier is closed")

func (q *heldQuerier) chunkQuerier() (storage.ChunkQuerier, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, errQuerierClosed
	}
	if q.chunksQ == nil {
		cq, err := q.u.db.ChunkQuerier(q.mint, q.maxt)
		if err != nil {
			return nil, err
		}
		q.chunksQ = cq
	}
	return q.chunksQ, nil
}

func (q *heldQuerier) labelQuerier() (storage.Querier, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, errQuerierClosed
	}
	if q.labelsQ == nil {
		lq, err := q.u.db.Querier(q.mint, q.maxt)
		if err != nil {
			return nil, err
		}
		q.labelsQ = lq
	}
	return q.labelsQ, nil
}

func (q *heldQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	if hints != nil && hints.Func == SeriesFunc {
		// The TSDB reads no chunk for such a select.
		lq, err := q.labelQuerier()
		if err != nil {
			return storage.ErrChunkSeriesSet(err)
		}
		return labelsOnly{lq.Select(ctx, sortSeries, hints, ms...)}
	}
	cq, err := q.chunkQuerier()
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	// Whole chunks: trimming them to the range would re-encode every chunk
	// that crosses its edges, and readers skip the samples outside anyway.
	untrimmed := storage.SelectHints{Start: q.mint, End: q.maxt}
	if hints != nil {
		untrimmed = *hints
	}
	untrimmed.DisableTrimming = true
	return cq.Select(ctx, sortSeries, &untrimmed, ms...)
}

func (q *heldQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	lq, err := q.labelQuerier()
	if err != nil {
		return nil, nil, err
	}
	return lq.LabelNames(ctx, hints, ms...)
}

func (q *heldQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	lq, err := q.labelQuerier()
	if err != nil {
		return nil, nil, err
	}
	return lq.LabelValues(ctx, name, hints, ms...)
}

// Close closes the TSDB queriers and lets the TSDB close again. A second
// Close does nothing.
func (q *heldQuerier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	var errs []error
	if q.chunksQ != nil {
		errs = append(errs, q.chunksQ.Close())
	}
	if q.labelsQ != nil {
		errs = append(errs, q.labelsQ.Close())
	}
	q.u.release()
	return errors.Join(errs...)
}

// labelsOnly presents a label-only series set as chunk series without chunks.
type labelsOnly struct{ storage.SeriesSet }

func (s labelsOnly) At() storage.ChunkSeries { return noChunks{s.SeriesSet.At().Labels()} }

type noChunks struct{ lset labels.Labels }

func (s noChunks) Labels() labels.Labels { return s.lset }

func (noChunks) Iterator(chunks.Iterator) chunks.Iterator {
	return storage.NewListChunkSeriesIterator()
}
