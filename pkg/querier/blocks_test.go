package querier

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/grafana/dskit/ring"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	sgclient "github.com/vigil-metrics/vigil/pkg/storegateway/client"
)

// blockRing places every block on the same replicas, in order.
type blockRing struct {
	ring.ReadRing
	replicas []ring.InstanceDesc
}

func (r blockRing) Get(uint32, ring.Operation, []ring.InstanceDesc, []string, []string) (ring.ReplicationSet, error) {
	return ring.ReplicationSet{Instances: r.replicas}, nil
}

// fakeGateway serves LabelNames for the blocks it holds, or fails.
type fakeGateway struct {
	holds []string
	err   error

	mu    sync.Mutex
	asked [][]string
}

func (g *fakeGateway) Querier(_ context.Context, ids []string, _, _ int64) (sgclient.Querier, error) {
	return &fakeBlockQuerier{g: g, ids: ids}, nil
}

type fakeBlockQuerier struct {
	storage.ChunkQuerier
	g      *fakeGateway
	ids    []string
	served []string
}

func (q *fakeBlockQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.g.mu.Lock()
	q.g.asked = append(q.g.asked, q.ids)
	q.g.mu.Unlock()
	if q.g.err != nil {
		return nil, nil, q.g.err
	}
	var names []string
	for _, id := range q.ids {
		if slices.Contains(q.g.holds, id) {
			q.served = append(q.served, id)
			names = append(names, "from_"+id[:4])
		}
	}
	return names, nil, nil
}

func (q *fakeBlockQuerier) Served() []string { return q.served }
func (q *fakeBlockQuerier) Close() error     { return nil }

func labelNamesOf(t *testing.T, gateways ...*fakeGateway) ([][]string, error) {
	t.Helper()
	var replicas []ring.InstanceDesc
	byID := map[string]*fakeGateway{}
	for i, g := range gateways {
		id := string(rune('a' + i))
		replicas = append(replicas, ring.InstanceDesc{Id: id, Addr: id})
		byID[id] = g
	}
	s := &Store{ring: blockRing{replicas: replicas}, clients: func(inst ring.InstanceDesc) (sgclient.StoreGateway, error) {
		return byID[inst.Id], nil
	}}
	return queryBlocks(context.Background(), s, "ws-1", testBlocks, func(ctx context.Context, c sgclient.StoreGateway, ids []string) ([]string, []string, error) {
		q, err := c.Querier(ctx, ids, 0, 1)
		if err != nil {
			return nil, nil, err
		}
		names, _, err := q.LabelNames(ctx, nil)
		if err != nil {
			return nil, nil, err
		}
		return q.Served(), names, nil
	})
}

var testBlocks = []ulid.ULID{ulid.MustParse("01JAAAAAAAAAAAAAAAAAAAAAAA"), ulid.MustParse("01JBBBBBBBBBBBBBBBBBBBBBBB")}

func TestStoreReadAsksTheNextReplicaForBlocksNotServed(t *testing.T) {
	a, b := testBlocks[0].String(), testBlocks[1].String()
	for _, tc := range []struct {
		name     string
		gateways []*fakeGateway
		want     [][]string // label names per answering gateway, sorted
	}{
		{"first replica serves all", []*fakeGateway{{holds: []string{a, b}}, {holds: []string{a, b}}}, [][]string{{"from_01JA", "from_01JB"}}},
		{"first replica lacks one", []*fakeGateway{{holds: []string{a}}, {holds: []string{a, b}}}, [][]string{{"from_01JA"}, {"from_01JB"}}},
		{"first replica fails", []*fakeGateway{{err: errors.New("connection refused")}, {holds: []string{a, b}}}, [][]string{{"from_01JA", "from_01JB"}}},
		{"third replica", []*fakeGateway{{}, {err: errors.New("down")}, {holds: []string{a, b}}}, [][]string{{"from_01JA", "from_01JB"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := labelNamesOf(t, tc.gateways...)
			require.NoError(t, err)
			var nonEmpty [][]string
			for _, g := range got {
				if len(g) > 0 {
					slices.Sort(g)
					nonEmpty = append(nonEmpty, g)
				}
			}
			slices.SortFunc(nonEmpty, func(x, y []string) int { return len(y) - len(x) })
			require.ElementsMatch(t, tc.want, nonEmpty)
		})
	}
}

// TestStoreReadFailsWhenNoReplicaServesABlock: a block no replica served
// fails the read; it is never a smaller answer.
func TestStoreReadFailsWhenNoReplicaServesABlock(t *testing.T) {
	a := testBlocks[0].String()
	gateways := []*fakeGateway{{holds: []string{a}}, {holds: []string{a}}, {err: errors.New("down")}}
	_, err := labelNamesOf(t, gateways...)
	require.Error(t, err)
	require.Equal(t, http.StatusServiceUnavailable, apierror.StatusOf(err))
	require.ErrorContains(t, err, "consistency check failed: no store-gateway served blocks ["+testBlocks[1].String()+"]")
	require.ErrorContains(t, err, "(err-vigil-store-consistency-check-failed)")
	for _, g := range gateways {
		require.Len(t, g.asked, 1, "each replica is asked once")
	}
	require.Len(t, gateways[0].asked[0], 2, "the first replica is asked for both blocks")
	require.Equal(t, []string{testBlocks[1].String()}, gateways[1].asked[0], "the next only for the missing one")
}

// seriesGateway serves every block asked for with fixed series.
type seriesGateway struct {
	series []*prompb.TimeSeries
	opened atomic.Int32
}

func (g *seriesGateway) Querier(_ context.Context, ids []string, _, _ int64) (sgclient.Querier, error) {
	g.opened.Add(1)
	return &seriesGatewayQuerier{g: g, ids: ids}, nil
}

type seriesGatewayQuerier struct {
	storage.ChunkQuerier
	g   *seriesGateway
	ids []string
}

func (q *seriesGatewayQuerier) Select(_ context.Context, sorted bool, _ *storage.SelectHints, _ ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(remote.FromQueryResult(sorted, &prompb.QueryResult{Timeseries: q.g.series}))
}
func (q *seriesGatewayQuerier) Served() []string { return q.ids }
func (q *seriesGatewayQuerier) Close() error     { return nil }

func storeOnlyQuerier(g *seriesGateway, lim limitsOf) *querier {
	replicas := []ring.InstanceDesc{{Id: "a", Addr: "a"}, {Id: "b", Addr: "b"}, {Id: "c", Addr: "c"}}
	store := &Store{ring: blockRing{replicas: replicas}, clients: func(ring.InstanceDesc) (sgclient.StoreGateway, error) { return g, nil }}
	return &querier{q: &Queryable{store: store, limits: lim}, mint: 0, maxt: 100, storeMaxt: 100, useStore: true, planned: true, blocks: testBlocks}
}

// TestStoreLimitOnTheFirstSeriesIsTheQuerys: a limit that the first series
// of a store-gateway goes over is the query's error (422), as for any later
// series, not a store-gateway failure: no other replica is asked, and the
// read is charged once.
func TestStoreLimitOnTheFirstSeriesIsTheQuerys(t *testing.T) {
	g := &seriesGateway{series: []*prompb.TimeSeries{promSeries("a", 1, 2, 3)}}
	q := storeOnlyQuerier(g, limitsOf{samples: 2})
	ss := q.Select(wsCtx(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	for ss.Next() {
	}
	err := ss.Err()
	require.ErrorContains(t, err, "the query hit the max number of samples limit")
	require.False(t, errors.As(err, &promql.ErrStorage{}), "a limit is the query's fault, not the storage's")
	require.Equal(t, http.StatusUnprocessableEntity, apierror.StatusOf(err))
	require.Equal(t, int32(1), g.opened.Load(), "no other replica is asked")
	require.Zero(t, q.limiter.samples.Load(), "what the failed read charged is given back")
}

// TestStoreSelectOfAClosedQuerierAsksNoStoreGateway: a select after the
// query ended opens no store-gateway querier (which would acquire blocks).
func TestStoreSelectOfAClosedQuerierAsksNoStoreGateway(t *testing.T) {
	g := &seriesGateway{series: []*prompb.TimeSeries{promSeries("a", 1, 2, 3)}}
	q := storeOnlyQuerier(g, limitsOf{})
	require.NoError(t, q.Close())
	ss := q.Select(wsCtx(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	for ss.Next() {
	}
	require.ErrorContains(t, ss.Err(), "the query is over")
	require.Zero(t, g.opened.Load())
}
