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
	"github.com/prometheus/prometheus/storage"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	sgclient "github.com/vigil-metrics/vigil/pkg/storegateway/client"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// StoreGateways resolves a store-gateway ring instance to a client.
type StoreGateways func(inst ring.InstanceDesc) (sgclient.StoreGateway, error)

// Store reads the blocks of object storage through the store-gateways.
type Store struct {
	ring    ring.ReadRing
	clients StoreGateways
	indexes *bucketIndexes
}

// NewStore returns a Store over the store-gateways of r, which reads each
// workspace's bucket index from bkt (or lists its blocks, while it has
// none), again once older than cfg's update period.
func NewStore(cfg Config, r ring.ReadRing, clients StoreGateways, bkt objstore.Bucket) *Store {
	return &Store{ring: r, clients: clients, indexes: newBucketIndexes(bkt, cfg.BucketIndexUpdate, cfg.BucketIndexMaxStale, cfg.MaxBlocksWithoutIndex)}
}

// blocksFor returns the blocks of the workspace holding samples in [mint,
// maxt], leaving out those marked for deletion (compacted into another
// block, or past retention), and when the index (or listing) they come
// from described the bucket: a block uploaded since is not among them.
func (s *Store) blocksFor(ctx context.Context, workspace string, mint, maxt int64) ([]ulid.ULID, time.Time, error) {
	idx, err := s.indexes.get(ctx, workspace)
	if err != nil {
		return nil, time.Time{}, err
	}
	var out []ulid.ULID
	for _, b := range idx.Blocks {
		if _, marked := idx.DeletionMark(b.ID); !marked && b.Overlaps(mint, maxt) {
			out = append(out, b.ID)
		}
	}
	return out, time.Unix(idx.UpdatedAt, 0), nil
}

var storeReadOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)

// maxStoreAttempts bounds how many replicas are asked for one block.
const maxStoreAttempts = 3

// queryBlocks calls call on store-gateways until every block was served by
// one: each store-gateway is asked for the blocks whose first untried
// replica it is, and a block it did not serve (or whose call failed) goes
// to its next replica. A block no replica served fails the read: a missing
// block is an error, never a smaller answer. An error that is the query's
// own (a limit, a bad request, the query ended: a 4xx) fails the read at
// once: every replica would answer the same.
func queryBlocks[T any](ctx context.Context, s *Store, workspace string, blocks []ulid.ULID,
	call func(ctx context.Context, c sgclient.StoreGateway, ids []string) (served []string, res T, err error)) ([]T, error) {
	remaining := map[ulid.ULID]bool{}
	for _, b := range blocks {
		remaining[b] = true
	}
	tried := map[ulid.ULID]map[string]bool{}
	var out []T
	var lastErr, finalErr error
	for attempt := 0; attempt < maxStoreAttempts && len(remaining) > 0; attempt++ {
		type target struct {
			inst ring.InstanceDesc
			ids  []string
		}
		targets := map[string]*target{}
		for b := range remaining {
			rs, err := s.ring.Get(sgclient.BlockKey(workspace, b), storeReadOp, nil, nil, nil)
			if err != nil {
				return nil, fmt.Errorf("find the store-gateways of block %s: %w", b, err)
			}
			for _, inst := range rs.Instances {
				if tried[b][inst.Id] {
					continue
				}
				if tried[b] == nil {
					tried[b] = map[string]bool{}
				}
				tried[b][inst.Id] = true
				t := targets[inst.Id]
				if t == nil {
					t = &target{inst: inst}
					targets[inst.Id] = t
				}
				t.ids = append(t.ids, b.String())
				break
			}
		}
		if len(targets) == 0 {
			break
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, t := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := s.clients(t.inst)
				var served []string
				var res T
				if err == nil {
					served, res, err = call(ctx, c, t.ids)
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil && finalErr == nil && (apierror.IsClientError(err) || errors.Is(err, errQueryOver)) {
					finalErr = err
				}
				if err != nil {
					lastErr = fmt.Errorf("store-gateway %s: %w", t.inst.Addr, err)
					return
				}
				out = append(out, res)
				for _, id := range served {
					if b, err := ulid.Parse(id); err == nil && slices.Contains(t.ids, id) {
						delete(remaining, b)
					}
				}
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if finalErr != nil {
			return nil, finalErr
		}
	}
	if len(remaining) > 0 {
		missing := make([]string, 0, len(remaining))
		for b := range remaining {
			missing = append(missing, b.String())
		}
		slices.Sort(missing)
		msg := fmt.Sprintf("consistency check failed: no store-gateway served blocks %v", missing)
		if lastErr != nil {
			msg += fmt.Sprintf(" (last error: %v)", lastErr)
		}
		return nil, apierror.New(apierror.Unavailable, apierror.IDStoreConsistency, "%s", msg)
	}
	return out, nil
}

// errQueryOver is the error of a read of a querier already closed.
var errQueryOver = errors.New("the query is over")

// storeBlocks returns the workspace of ctx and its blocks of the query's
// store range.
func (q *querier) storeBlocks(ctx context.Context) (string, []ulid.ULID, error) {
	ws, err := tenant.ID(ctx)
	if err != nil {
		return "", nil, err
	}
	if err := q.plan(ctx); err != nil {
		return ws, nil, err
	}
	return ws, q.blocks, nil
}

// selectStore returns one series set per store-gateway asked, over the
// blocks of [mint, maxt]. Each store-gateway's querier is closed with q.
func (q *querier) selectStore(ctx context.Context, mint, maxt int64, hints *storage.SelectHints, limiter *queryLimiter, ms []*labels.Matcher) ([]storage.SeriesSet, error) {
	ws, blocks, err := q.storeBlocks(ctx)
	if err != nil || len(blocks) == 0 {
		return nil, err
	}
	start, end := mint, maxt
	if hints != nil {
		start, end = max(start, hints.Start), min(end, hints.End)
	}
	sets, err := queryBlocks(ctx, q.q.store, ws, blocks, func(ctx context.Context, c sgclient.StoreGateway, ids []string) ([]string, *fetchSet, error) {
		if q.over() {
			return nil, nil, errQueryOver
		}
		sq, err := c.Querier(ctx, ids, start, end)
		if err != nil {
			return nil, nil, err
		}
		if !q.hold(sq) {
			return nil, nil, errQueryOver
		}
		set := newFetchSet(sq.Select(ctx, true, hints, ms...), limiter)
		// The first series read tells which blocks were served; a
		// store-gateway that fails before it counts as one that served
		// none, and what its set charged the query's limits is given
		// back.
		if err := set.prime(); err != nil {
			set.refund()
			_ = sq.Close()
			return nil, nil, err
		}
		return sq.Served(), set, nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]storage.SeriesSet, len(sets))
	for i, s := range sets {
		out[i] = s
	}
	return out, nil
}

// storeLabels returns the label names (name == "") or values of the blocks
// of [mint, maxt].
func (q *querier) storeLabels(ctx context.Context, mint, maxt int64, name string, ms []*labels.Matcher) ([][]string, error) {
	ws, blocks, err := q.storeBlocks(ctx)
	if err != nil || len(blocks) == 0 {
		return nil, err
	}
	return queryBlocks(ctx, q.q.store, ws, blocks, func(ctx context.Context, c sgclient.StoreGateway, ids []string) ([]string, []string, error) {
		sq, err := c.Querier(ctx, ids, mint, maxt)
		if err != nil {
			return nil, nil, err
		}
		defer sq.Close()
		var out []string
		if name == "" {
			out, _, err = sq.LabelNames(ctx, nil, ms...)
		} else {
			out, _, err = sq.LabelValues(ctx, name, nil, ms...)
		}
		if err != nil {
			return nil, nil, err
		}
		return sq.Served(), out, nil
	})
}

// ranges splits [mint, maxt] between the ingesters (the recent part, within
// -querier.query-ingesters-within) and the store (the part older than
// -querier.query-store-after). The two overlap by design: a block reaches
// the store-gateways some time after it leaves the ingesters' heads. Once
// the workspace's bucket index is read, plan moves the ingesters' part
// back by the index's age.
func (q *Queryable) ranges(mint, maxt int64) (ingMint int64, useIngesters bool, storeMaxt int64, useStore bool) {
	if q.store == nil {
		return mint, true, 0, false
	}
	now := q.now()
	ingMint = q.ingestersFrom(mint, now)
	storeMaxt = maxt
	if q.cfg.QueryStoreAfter > 0 {
		storeMaxt = min(maxt, now.Add(-q.cfg.QueryStoreAfter).UnixMilli())
	}
	return ingMint, ingMint <= maxt, storeMaxt, mint <= storeMaxt
}

// ingestersFrom is where a query's read of the ingesters starts when the
// store is known to hold every block uploaded before described.
func (q *Queryable) ingestersFrom(mint int64, described time.Time) int64 {
	if q.cfg.QueryIngestersWithin <= 0 {
		return mint
	}
	return max(mint, described.Add(-q.cfg.QueryIngestersWithin).UnixMilli())
}

// plan reads, once per query, the blocks of the store's part of the query
// and moves the ingesters' part back to cover what the index (or listing)
// of those blocks does not describe yet. An index written at U lists every
// block uploaded before U; a block it does not list was uploaded after U,
// soon after an ingester cut it, so it holds samples newer than about U
// minus a block range, and that ingester still has them (ingesters keep
// blocks for -ingester.tsdb.retention-period, longer than
// -querier.query-ingesters-within). Reading the ingesters from U minus the
// window, rather than now minus the window, misses nothing the index lacks.
func (q *querier) plan(ctx context.Context) error {
	q.planMu.Lock()
	defer q.planMu.Unlock()
	if q.planned || !q.useStore {
		return q.planErr
	}
	q.planned = true
	ws, err := tenant.ID(ctx)
	if err != nil {
		q.planErr = err
		return err
	}
	blocks, described, err := q.q.store.blocksFor(ctx, ws, q.mint, q.storeMaxt)
	if err != nil {
		q.planErr = err
		return err
	}
	q.blocks = blocks
	if now := q.q.now(); now.Before(described) {
		described = now
	}
	if from := q.q.ingestersFrom(q.mint, described); from < q.ingMint {
		q.ingMint = from
		q.useIngesters = from <= q.maxt
	}
	return nil
}
