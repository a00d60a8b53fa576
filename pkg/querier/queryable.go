package querier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/ingester/client"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Ingesters resolves a ring instance to a client.
type Ingesters func(inst ring.InstanceDesc) (client.Ingester, error)

// Queryable is a storage.Queryable over the ingesters of a ring and, when
// it has a store, the blocks of object storage. The workspace comes from
// the context of each call.
type Queryable struct {
	cfg       Config
	ring      ring.ReadRing
	ingesters Ingesters
	store     *Store // nil: ingesters only
	limits    Limits
	now       func() time.Time
}

// NewQueryable returns a Queryable over the ingesters of r and the blocks of
// store (which may be nil), whose queries read at most what limits allow.
func NewQueryable(cfg Config, r ring.ReadRing, ingesters Ingesters, store *Store, limits Limits) *Queryable {
	return &Queryable{cfg: cfg, ring: r, ingesters: ingesters, store: store, limits: limits, now: time.Now}
}

// Querier implements storage.Queryable.
func (q *Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return q.newQuerier(mint, maxt), nil
}

// ChunkQuerier implements storage.ChunkQueryable (used by remote read).
func (q *Queryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return &chunkQuerier{q.newQuerier(mint, maxt)}, nil
}

func (q *Queryable) newQuerier(mint, maxt int64) *querier {
	qr := &querier{q: q, mint: mint, maxt: maxt}
	qr.ingMint, qr.useIngesters, qr.storeMaxt, qr.useStore = q.ranges(mint, maxt)
	return qr
}

type querier struct {
	q          *Queryable
	mint, maxt int64
	// The ingesters are read from ingMint on, the store up to storeMaxt.
	// plan may move ingMint back, before the first read.
	ingMint, storeMaxt     int64
	useIngesters, useStore bool

	planMu  sync.Mutex
	planned bool
	planErr error
	blocks  []ulid.ULID // of the store's part, once planned

	mu      sync.Mutex
	closers []storage.ChunkQuerier
	closed  bool
	limiter *queryLimiter // of the query's workspace, made by its first select
}

// over tells whether q was closed.
func (q *querier) over() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// hold keeps iq for closing with q. A replica that answers after q was closed
// (DoUntilQuorum returns at quorum, the slower calls go on) is closed at once,
// so that its ingester does not count it as in use forever.
func (q *querier) hold(iq storage.ChunkQuerier) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		_ = iq.Close()
		return false
	}
	q.closers = append(q.closers, iq)
	return true
}

// Close closes every ingester and store-gateway querier opened by this
// querier.
func (q *querier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var errs []error
	for _, c := range q.closers {
		errs = append(errs, c.Close())
	}
	q.closers, q.closed = nil, true
	return errors.Join(errs...)
}

// storageErr gives an error of a read from ingesters the status its cause
// fixes: the query's own fault (a bad matcher, a per-query limit) stays a
// plain error, which Prometheus's API answers with 422; anything else is a
// storage error, answered with 500.
func storageErr(err error) error {
	if err == nil {
		return nil
	}
	if apierror.IsClientError(err) {
		return apierror.From(err)
	}
	return promql.ErrStorage{Err: apierror.From(err)}
}

func (q *querier) open(ctx context.Context, inst *ring.InstanceDesc) (storage.ChunkQuerier, error) {
	c, err := q.q.ingesters(*inst)
	if err != nil {
		return nil, err
	}
	iq, err := c.Querier(ctx, q.ingMint, q.maxt)
	if err != nil {
		return nil, err
	}
	if !q.hold(iq) {
		return nil, errors.New("the query is over")
	}
	return iq, nil
}

// readSet returns the ingesters a read must hear from to see every
// acknowledged write. With zone awareness, dskit sizes the quorum over the
// zones present in the ring; a zone whose only ingester left the ring (a
// restart with -ingester.ring.unregister-on-shutdown, or auto-forget) would
// then shrink the quorum to one zone, which may be the one that missed
// writes. Every zone that owns data counts: at least the replication
// factor's worth, and a zone that is missing or unhealthy is unavailable,
// never gone.
func (q *Queryable) readSet() (ring.ReplicationSet, error) {
	rs, err := q.ring.GetReplicationSetForOperation(ring.Read)
	if err != nil || !rs.ZoneAwarenessEnabled {
		return rs, err
	}
	rf := q.ring.ReplicationFactor()
	healthy := map[string]struct{}{}
	for _, inst := range rs.Instances {
		healthy[inst.Zone] = struct{}{}
	}
	// Writes are acknowledged by rf/2+1 zones: a read may skip at most
	// rf/2 of the zones owning data, and every zone that owns data but is
	// not in the healthy set is already skipped.
	owning := max(q.ring.ZonesCount(), rf)
	rs.MaxUnavailableZones = rf/2 - (owning - len(healthy))
	if rs.MaxUnavailableZones < 0 {
		return ring.ReplicationSet{}, fmt.Errorf("%w: a read needs %d of the %d zones owning data, %d are healthy",
			ring.ErrTooManyUnhealthyInstances, owning-rf/2, owning, len(healthy))
	}
	return rs, nil
}

// forQuorum runs f on enough ingesters to see every acknowledged write: the
// only one when there is one, a quorum of zones or instances otherwise.
func forQuorum[T any](ctx context.Context, q *querier, f func(context.Context, storage.ChunkQuerier) (T, error)) ([]T, error) {
	rs, err := q.q.readSet()
	if err != nil {
		return nil, storageErr(err)
	}
	res, err := ring.DoUntilQuorum(ctx, rs, ring.DoUntilQuorumConfig{}, func(ctx context.Context, inst *ring.InstanceDesc) (T, error) {
		var zero T
		iq, err := q.open(ctx, inst)
		if err != nil {
			return zero, err
		}
		return f(ctx, iq)
	}, func(T) {})
	return res, storageErr(err)
}

// limiterFor returns the query's limiter, made for the workspace in ctx by
// the first select: one query's selects share one budget.
func (q *querier) limiterFor(ctx context.Context) (*queryLimiter, error) {
	ws, err := tenant.ID(ctx)
	if err != nil {
		return nil, apierror.New(apierror.BadData, apierror.IDMissingTenant, "%v", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.limiter == nil {
		q.limiter = newQueryLimiter(q.q.limits, ws, q.mint, q.maxt)
	}
	return q.limiter, nil
}

// Select returns the matching series of every ingester replica and of the
// store merged into one set; a sample held by several replicas or blocks
// appears once. Ingesters and store-gateways stream their chunks; each
// series' chunks are counted against the query's limits as the set reaches
// it, and a read over a limit fails the set: never a partial result
// presented as complete.
func (q *querier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	limiter, err := q.limiterFor(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if err := q.plan(ctx); err != nil {
		return storage.ErrSeriesSet(storageErr(err))
	}
	var sets []storage.SeriesSet
	if q.useStore {
		s, err := q.selectStore(ctx, q.mint, q.storeMaxt, hints, limiter, ms)
		if err != nil {
			return storage.ErrSeriesSet(storageErr(err))
		}
		sets = append(sets, s...)
	}
	if q.useIngesters {
		s, err := q.selectIngesters(ctx, sortSeries || len(sets) > 0, hints, limiter, ms)
		if err != nil {
			return storage.ErrSeriesSet(storageErr(err))
		}
		sets = append(sets, s...)
	}
	var set storage.SeriesSet
	switch len(sets) {
	case 0:
		set = storage.EmptySeriesSet()
	case 1:
		set = sets[0]
	default:
		set = storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	}
	return &storageErrSet{&limitedSet{SeriesSet: set, limiter: limiter}}
}

// selectIngesters returns the series sets of the ingester replicas a read
// needs.
func (q *querier) selectIngesters(ctx context.Context, sortSeries bool, hints *storage.SelectHints, limiter *queryLimiter, ms []*labels.Matcher) ([]storage.SeriesSet, error) {
	rs, err := q.q.readSet()
	if err != nil {
		return nil, err
	}
	if len(rs.Instances) == 1 {
		// One replica (monolithic mode): no merge.
		iq, err := q.open(ctx, &rs.Instances[0])
		if err != nil {
			return nil, err
		}
		return []storage.SeriesSet{newFetchSet(iq.Select(ctx, sortSeries, hints, ms...), limiter)}, nil
	}
	// Several replicas: each counts against the quorum once it answered
	// with its first series (or its end), then the sorted sets are merged.
	// A replica whose answer is not needed is closed at once, and what its
	// first series cost the query's limits is given back.
	answers, err := ring.DoUntilQuorum(ctx, rs, ring.DoUntilQuorumConfig{}, func(callCtx context.Context, inst *ring.InstanceDesc) (*replicaAnswer, error) {
		// The replica's stream must outlive this call: it is read as the
		// merged set is iterated. It ends with the query or when q closes.
		iq, err := q.open(ctx, inst)
		if err != nil {
			return nil, err
		}
		set := newFetchSet(iq.Select(ctx, true, hints, ms...), limiter)
		if err := set.prime(); err != nil {
			_ = iq.Close()
			return nil, err
		}
		return &replicaAnswer{set: set, iq: iq}, nil
	}, func(a *replicaAnswer) {
		a.set.refund()
		_ = a.iq.Close()
	})
	if err != nil {
		return nil, err
	}
	sets := make([]storage.SeriesSet, 0, len(answers))
	for _, a := range answers {
		sets = append(sets, a.set)
	}
	return sets, nil
}

// replicaAnswer is one replica's series set and the querier it reads.
type replicaAnswer struct {
	set *fetchSet
	iq  storage.ChunkQuerier
}

// LabelNames returns the union of the label names of every replica and of
// the store.
func (q *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.labels(ctx, "", hints, ms, func(ctx context.Context, iq storage.ChunkQuerier) ([]string, error) {
		names, _, err := iq.LabelNames(ctx, hints, ms...)
		return names, err
	})
}

// LabelValues returns the union of the label values of every replica and
// of the store.
func (q *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.labels(ctx, name, hints, ms, func(ctx context.Context, iq storage.ChunkQuerier) ([]string, error) {
		values, _, err := iq.LabelValues(ctx, name, hints, ms...)
		return values, err
	})
}

func (q *querier) labels(ctx context.Context, name string, hints *storage.LabelHints, ms []*labels.Matcher, f func(context.Context, storage.ChunkQuerier) ([]string, error)) ([]string, annotations.Annotations, error) {
	if err := q.plan(ctx); err != nil {
		return nil, nil, storageErr(err)
	}
	var lists [][]string
	if q.useIngesters {
		res, err := forQuorum(ctx, q, f)
		if err != nil {
			return nil, nil, err
		}
		lists = append(lists, res...)
	}
	if q.useStore {
		res, err := q.storeLabels(ctx, q.mint, q.storeMaxt, name, ms)
		if err != nil {
			return nil, nil, storageErr(err)
		}
		lists = append(lists, res...)
	}
	return union(lists, hints), nil, nil
}

func union(lists [][]string, hints *storage.LabelHints) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out
}

// storageErrSet marks the error of a lazily read series set as a storage error.
type storageErrSet struct{ storage.SeriesSet }

func (s *storageErrSet) Err() error { return storageErr(s.SeriesSet.Err()) }

// chunkQuerier serves remote read by encoding the merged series into chunks.
type chunkQuerier struct {
	*querier
}

func (c *chunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(c.querier.Select(ctx, sortSeries, hints, ms...))
}
