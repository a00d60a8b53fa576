package querier

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/ingester/client"
	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

func wsCtx() context.Context { return tenant.WithID(context.Background(), "ws-1") }

// limitsOf are fixed per-query limits; zero ones do not limit.
type limitsOf struct {
	series, chunks, samples int
	bytes                   int64
}

func (l limitsOf) MaxFetchedSeriesPerQuery(string) int       { return l.series }
func (l limitsOf) MaxFetchedChunksPerQuery(string) int       { return l.chunks }
func (l limitsOf) MaxFetchedSamplesPerQuery(string) int      { return l.samples }
func (l limitsOf) MaxFetchedChunkBytesPerQuery(string) int64 { return l.bytes }

type noLimits = limitsOf

// fakeRing returns one replication set spanning its instances; only the
// methods the querier calls are implemented.
type fakeRing struct {
	ring.ReadRing
	rs ring.ReplicationSet
}

func (r fakeRing) GetReplicationSetForOperation(ring.Operation) (ring.ReplicationSet, error) {
	return r.rs, nil
}

// replica serves fixed series, or fails.
type replica struct {
	series    []*prompb.TimeSeries
	metadata  []prompb.MetricMetadata
	exemplars []prompb.TimeSeries
	lastMD    *ingesterpb.MetricsMetadataRequest // the last metadata request
	err       error
	delay     time.Duration // before answering
	opened    atomic.Int32  // queriers opened
	closed    atomic.Int32  // queriers closed
}

func (r *replica) Push(context.Context, *prompb.WriteRequest) error { return nil }

func (r *replica) MetricsMetadata(_ context.Context, req *ingesterpb.MetricsMetadataRequest) (*ingesterpb.MetricsMetadataResponse, error) {
	time.Sleep(r.delay)
	r.lastMD = req
	if r.err != nil {
		return nil, r.err
	}
	return &ingesterpb.MetricsMetadataResponse{Metadata: r.metadata}, nil
}

func (r *replica) QueryExemplars(context.Context, *ingesterpb.ExemplarQueryRequest) (*ingesterpb.ExemplarQueryResponse, error) {
	time.Sleep(r.delay)
	if r.err != nil {
		return nil, r.err
	}
	return &ingesterpb.ExemplarQueryResponse{Timeseries: r.exemplars}, nil
}

func (r *replica) Querier(context.Context, int64, int64) (storage.ChunkQuerier, error) {
	time.Sleep(r.delay)
	if r.err != nil {
		return nil, r.err
	}
	r.opened.Add(1)
	return &replicaQuerier{r}, nil
}

type replicaQuerier struct{ r *replica }

func (q *replicaQuerier) Select(_ context.Context, sorted bool, _ *storage.SelectHints, _ ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(remote.FromQueryResult(sorted, &prompb.QueryResult{Timeseries: q.r.series}))
}
func (q *replicaQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	var out []string
	for _, s := range q.r.series {
		for _, l := range s.Labels {
			out = append(out, l.Name)
		}
	}
	return out, nil, nil
}
func (q *replicaQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (q *replicaQuerier) Close() error { q.r.closed.Add(1); return nil }

func promSeries(job string, ts ...int64) *prompb.TimeSeries {
	s := &prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: job}}}
	for _, t := range ts {
		s.Samples = append(s.Samples, prompb.Sample{Timestamp: t, Value: float64(t)})
	}
	return s
}

func newQueryable(replicas ...*replica) *Queryable {
	rs := ring.ReplicationSet{MaxErrors: (len(replicas) - 1) / 2}
	byAddr := map[string]*replica{}
	for i, r := range replicas {
		addr := string(rune('a' + i))
		rs.Instances = append(rs.Instances, ring.InstanceDesc{Addr: addr, Id: addr})
		byAddr[addr] = r
	}
	return NewQueryable(Config{}, fakeRing{rs: rs}, func(inst ring.InstanceDesc) (client.Ingester, error) { return byAddr[inst.Addr], nil }, nil, noLimits{})
}

func collect(t *testing.T, ss storage.SeriesSet) map[string][]int64 {
	t.Helper()
	out := map[string][]int64{}
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			ts, _ := it.At()
			out[s.Labels().Get("job")] = append(out[s.Labels().Get("job")], ts)
		}
	}
	require.NoError(t, ss.Err())
	return out
}

// TestSelectMergesReplicas: each replica may miss samples (a write reached a
// quorum, not all); the merged series has each sample once.
func TestSelectMergesReplicas(t *testing.T) {
	q, err := newQueryable(
		&replica{series: []*prompb.TimeSeries{promSeries("a", 1, 2, 3), promSeries("b", 1)}},
		&replica{series: []*prompb.TimeSeries{promSeries("a", 2, 3, 4)}},
		&replica{err: errors.New("connection refused")},
	).Querier(0, 100)
	require.NoError(t, err)
	defer q.Close()
	got := collect(t, q.Select(wsCtx(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")))
	require.Equal(t, map[string][]int64{"a": {1, 2, 3, 4}, "b": {1}}, got)

	names, _, err := q.LabelNames(wsCtx(), nil)
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "job"}, names)
}

func TestSelectFailsWithoutQuorum(t *testing.T) {
	down := errors.New("connection refused")
	q, err := newQueryable(&replica{series: []*prompb.TimeSeries{promSeries("a", 1)}}, &replica{err: down}, &replica{err: down}).Querier(0, 100)
	require.NoError(t, err)
	ss := q.Select(wsCtx(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	require.False(t, ss.Next())
	require.ErrorContains(t, ss.Err(), down.Error())
	require.ErrorAs(t, ss.Err(), &promql.ErrStorage{}, "ingester failures are storage errors (HTTP 500), not bad queries")
}

func TestSelectSingleReplicaPassesThrough(t *testing.T) {
	q, err := newQueryable(&replica{series: []*prompb.TimeSeries{promSeries("a", 5, 6)}}).Querier(0, 100)
	require.NoError(t, err)
	got := collect(t, q.Select(wsCtx(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")))
	require.Equal(t, map[string][]int64{"a": {5, 6}}, got)
}

type closeCounter struct {
	storage.ChunkQuerier
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

// TestLateReplicaIsClosed: a replica that answers after the querier was
// closed (quorum was reached without it) is closed at once.
func TestLateReplicaIsClosed(t *testing.T) {
	sq, err := newQueryable(&replica{}).Querier(0, 1)
	require.NoError(t, err)
	q := sq.(*querier)
	early, late := &closeCounter{}, &closeCounter{}
	q.hold(early)
	require.NoError(t, q.Close())
	q.hold(late)
	require.Equal(t, 1, early.closed)
	require.Equal(t, 1, late.closed)
}

// zoneRing is a zone-aware ring of which GetReplicationSetForOperation
// returns the healthy instances, as dskit does, and zones counts the zones
// registered in it.
type zoneRing struct {
	fakeRing
	zones int
}

func (r zoneRing) ZonesCount() int        { return r.zones }
func (r zoneRing) ReplicationFactor() int { return 3 }

func TestReadSetCountsEveryZoneOwningData(t *testing.T) {
	inst := func(zones ...string) []ring.InstanceDesc {
		var out []ring.InstanceDesc
		for _, z := range zones {
			out = append(out, ring.InstanceDesc{Addr: "ingester-" + z, Id: "ingester-" + z, Zone: z})
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		healthy     []ring.InstanceDesc
		dskitMax    int // what dskit computed
		zonesInRing int
		wantMax     int // -1: the read must fail
	}{
		{"three zones healthy", inst("a", "b", "c"), 1, 3, 1},
		{"one zone unhealthy", inst("a", "c"), 0, 3, 0},
		// The defect: zone b left the ring, dskit sizes the quorum over two
		// zones and lets one answer alone.
		{"one zone gone from the ring", inst("a", "c"), 1, 2, 0},
		{"one zone gone, another unhealthy", inst("a"), 0, 2, -1},
		{"four zones, rf 3", inst("a", "b", "c", "d"), 1, 4, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := zoneRing{fakeRing: fakeRing{rs: ring.ReplicationSet{Instances: tc.healthy, MaxUnavailableZones: tc.dskitMax, ZoneAwarenessEnabled: true}}, zones: tc.zonesInRing}
			rs, err := NewQueryable(Config{}, r, nil, nil, noLimits{}).readSet()
			if tc.wantMax < 0 {
				require.ErrorIs(t, err, ring.ErrTooManyUnhealthyInstances)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantMax, rs.MaxUnavailableZones)
		})
	}
}

// TestZoneGoneFromRingStillReadsEveryOtherZone: zone a missed a write that
// zones b and c acknowledged; then zone b's ingester left the ring. A read
// must still hear zone c, never answer from zone a alone.
func TestZoneGoneFromRingStillReadsEveryOtherZone(t *testing.T) {
	missed := &replica{series: []*prompb.TimeSeries{promSeries("a", 1)}}
	// The complete zone answers last: a one-zone quorum would not wait for it.
	complete := &replica{series: []*prompb.TimeSeries{promSeries("a", 1, 2)}, delay: 20 * time.Millisecond}
	byAddr := map[string]*replica{"ingester-a": missed, "ingester-c": complete}
	rs := ring.ReplicationSet{
		Instances:            []ring.InstanceDesc{{Addr: "ingester-a", Id: "ingester-a", Zone: "a"}, {Addr: "ingester-c", Id: "ingester-c", Zone: "c"}},
		MaxUnavailableZones:  1, // dskit's answer with two zones in the ring
		ZoneAwarenessEnabled: true,
	}
	qb := NewQueryable(Config{}, zoneRing{fakeRing: fakeRing{rs: rs}, zones: 2}, func(inst ring.InstanceDesc) (client.Ingester, error) { return byAddr[inst.Addr], nil }, nil, noLimits{})
	for i := 0; i < 5; i++ {
		q, err := qb.Querier(0, 100)
		require.NoError(t, err)
		got := collect(t, q.Select(wsCtx(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")))
		require.Equal(t, map[string][]int64{"a": {1, 2}}, got)
		require.NoError(t, q.Close())
	}
}

// TestQueryLimits: each per-query limit refuses the read that goes over it
// with its message, as a query error (422), never a partial result.
func TestQueryLimits(t *testing.T) {
	replicas := func() []*replica {
		one := &replica{series: []*prompb.TimeSeries{promSeries("a", 1, 2, 3), promSeries("b", 1, 2, 3)}}
		return []*replica{one, one, one}
	}
	for _, tc := range []struct {
		name   string
		limits limitsOf
		msg    string
	}{
		{"series", limitsOf{series: 1}, "the query hit the max number of series limit (limit: 1 series, -querier.max-fetched-series-per-query) (err-vigil-max-series-per-query)"},
		{"chunks", limitsOf{chunks: 1}, "the query hit the max number of chunks limit while fetching chunks from ingesters (limit: 1 chunks"},
		{"samples", limitsOf{samples: 5}, "the query hit the max number of samples limit (limit: 5 samples"},
		{"bytes", limitsOf{bytes: 10}, "the query hit the aggregated chunks size limit (limit: 10 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{1, 3} { // one replica (monolith) and three
				qb := newQueryable(replicas()[:n]...)
				qb.limits = tc.limits
				q, err := qb.Querier(0, 100)
				require.NoError(t, err)
				ss := q.Select(wsCtx(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
				for ss.Next() {
				}
				require.ErrorContains(t, ss.Err(), tc.msg)
				require.False(t, errors.As(ss.Err(), &promql.ErrStorage{}), "a limit is the query's fault (422), not the storage's (500)")
				require.NoError(t, q.Close())
			}
			// Within the limit the same query works.
			qb := newQueryable(replicas()...)
			qb.limits = limitsOf{series: 2, chunks: 6, samples: 18, bytes: 1 << 20}
			q, err := qb.Querier(0, 100)
			require.NoError(t, err)
			got := collect(t, q.Select(wsCtx(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")))
			require.Equal(t, map[string][]int64{"a": {1, 2, 3}, "b": {1, 2, 3}}, got)
		})
	}
}

func TestBytesLimitScalesWithTheRange(t *testing.T) {
	day := int64(24 * 3600 * 1000)
	l := limitsOf{bytes: 100}
	require.Equal(t, int64(100), newQueryLimiter(l, "ws", 0, day).maxBytes)
	require.Equal(t, int64(200), newQueryLimiter(l, "ws", 0, day+1).maxBytes)
	require.Equal(t, int64(700), newQueryLimiter(l, "ws", 0, 7*day).maxBytes)
	require.Equal(t, int64(0), newQueryLimiter(limitsOf{}, "ws", 0, 7*day).maxBytes, "no limit stays no limit")
}

// TestUnneededReplicaIsClosedAndRefunded: a replica that answers after the
// quorum is closed at once (its stream ends), and what its first series
// cost the query's limits is given back.
func TestUnneededReplicaIsClosedAndRefunded(t *testing.T) {
	series := []*prompb.TimeSeries{promSeries("a", 1, 2, 3)}
	replicas := []*replica{{series: series}, {series: series}, {series: series, delay: 50 * time.Millisecond}}
	qb := newQueryable(replicas...)
	q, err := qb.Querier(0, 100)
	require.NoError(t, err)
	got := collect(t, q.Select(wsCtx(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")))
	require.Equal(t, map[string][]int64{"a": {1, 2, 3}}, got)
	// The slow replica may not even be asked once the quorum is there; if
	// it was, it is closed without waiting for the query to be closed.
	unclosed := func() (n int32) {
		for _, r := range replicas {
			n += r.opened.Load() - r.closed.Load()
		}
		return n
	}
	time.Sleep(200 * time.Millisecond) // the slow replica has answered, if it was asked
	require.Eventually(t, func() bool { return unclosed() == 2 }, 5*time.Second, time.Millisecond, "only the two replicas read stay open")
	lim := q.(*querier).limiter
	require.EqualValues(t, 2, lim.chunks.Load(), "two replicas' chunks, not three")
	require.NoError(t, q.Close())
}
