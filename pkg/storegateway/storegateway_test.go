package storegateway

import (
	"context"
	crand "crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/storegatewaypb"
	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/ringmember/ringtest"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
	"github.com/vigil-metrics/vigil/pkg/storegateway/client"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// uploadBlock writes series job=<job> with samples every 15 s over
// [from, to) into a block of workspace ws.
func uploadBlock(t *testing.T, bkt objstore.Bucket, ws string, from, to int64, jobs ...string) ulid.ULID {
	t.Helper()
	var sets []labels.Labels
	for _, job := range jobs {
		sets = append(sets, labels.FromStrings("__name__", "up", "job", job))
	}
	return uploadSeries(t, bkt, ws, from, to, sets)
}

// uploadSeries writes the series with samples every 15 s over [from, to)
// into a block of workspace ws.
func uploadSeries(t *testing.T, bkt objstore.Bucket, ws string, from, to int64, sets []labels.Labels) ulid.ULID {
	t.Helper()
	var series []storage.Series
	for _, ls := range sets {
		var samples []chunks.Sample
		for ts := from; ts < to; ts += 15_000 {
			samples = append(samples, sample{ts, float64(ts / 1000)})
		}
		series = append(series, storage.NewListSeries(ls, samples))
	}
	dir, err := tsdb.CreateBlock(series, t.TempDir(), 4*int64(time.Hour/time.Millisecond), promslog.NewNopLogger())
	require.NoError(t, err)
	meta, err := vtsdb.ReadLocalMeta(dir)
	require.NoError(t, err)
	meta.Vigil = vtsdb.Origin{Workspace: ws, Source: vtsdb.SourceIngester}
	require.NoError(t, vtsdb.Upload(context.Background(), log.NewNopLogger(), bucket.ForWorkspace(bkt, ws), dir, meta))
	return meta.ULID
}

type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) ST() int64                     { return 0 }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }

// startGateway serves a store-gateway over bkt on a loopback gRPC port.
type testLimits struct {
	series int
	bytes  int64
}

func (l testLimits) MaxFetchedSeriesPerQuery(string) int       { return l.series }
func (l testLimits) MaxFetchedChunkBytesPerQuery(string) int64 { return l.bytes }

func startGateway(t *testing.T, bkt objstore.Bucket, readAhead int) client.StoreGateway {
	_, c := startGatewayAndClient(t, bkt, readAhead, testLimits{})
	return c
}

// startGatewayAndClient starts a store-gateway and returns it with its gRPC
// client.
func startGatewayAndClient(t *testing.T, bkt objstore.Bucket, readAhead int, lim Limits) (*StoreGateway, client.StoreGateway) {
	t.Helper()
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.Ring.InstanceID, cfg.Ring.InstanceAddr = "sg-1", "127.0.0.1"
	cfg.ChunkReadAhead = readAhead
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	store := ringmember.Store{Client: kv}
	reg := prometheus.NewRegistry()
	r, err := ringmember.NewRing(cfg.Ring, RingName, RingKey, store, reg, log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	g, err := New(cfg, t.TempDir(), bkt, r, joinRing(t, cfg, store, r), lim, reg, log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), g))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), g) })

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	storegatewaypb.RegisterStoreGatewayServer(srv, g)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return g, overGRPC{storegatewaypb.NewStoreGatewayClient(conn)}
}

func wsContext(t *testing.T, ws string) context.Context {
	t.Helper()
	return tenant.WithID(context.Background(), ws)
}

// overGRPC is the Querier-shaped face of a store-gateway's gRPC client.
type overGRPC struct {
	c storegatewaypb.StoreGatewayClient
}

func (r overGRPC) Querier(ctx context.Context, ids []string, mint, maxt int64) (client.Querier, error) {
	return client.NewRemoteQuerier(ctx, r.c, ids, mint, maxt)
}

// selectAll reads the series of blocks ids over [mint, maxt] matching ms,
// and returns the blocks served, the samples of each job and the number of
// series read before an error.
func selectAll(ctx context.Context, c client.StoreGateway, ids []string, mint, maxt int64, ms ...*labels.Matcher) ([]string, map[string][]int64, int, error) {
	q, err := c.Querier(ctx, ids, mint, maxt)
	if err != nil {
		return nil, nil, 0, err
	}
	defer q.Close()
	ss := q.Select(ctx, true, nil, ms...)
	out := map[string][]int64{}
	n := 0
	for ss.Next() {
		n++
		job := ss.At().Labels().Get("job")
		it := ss.At().Iterator(nil)
		for it.Next() {
			ci := it.At().Chunk.Iterator(nil)
			for ci.Next() == chunkenc.ValFloat {
				ts, _ := ci.At()
				out[job] = append(out[job], ts)
			}
		}
		if err := it.Err(); err != nil {
			return nil, nil, n, err
		}
	}
	if err := ss.Err(); err != nil {
		return nil, nil, n, err
	}
	return q.Served(), out, n, nil
}

// labelsOf returns the label names (name == "") or values of blocks ids.
func labelsOf(ctx context.Context, c client.StoreGateway, ids []string, mint, maxt int64, name string) ([]string, []string, error) {
	q, err := c.Querier(ctx, ids, mint, maxt)
	if err != nil {
		return nil, nil, err
	}
	defer q.Close()
	var out []string
	if name == "" {
		out, _, err = q.LabelNames(ctx, nil)
	} else {
		out, _, err = q.LabelValues(ctx, name, nil)
	}
	return q.Served(), out, err
}

func TestSeriesFromBlocksInObjectStorage(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	hour := int64(time.Hour / time.Millisecond)
	var jobs []string
	for i := 0; i < 200; i++ {
		jobs = append(jobs, fmt.Sprintf("job-%03d", i))
	}
	b1 := uploadBlock(t, bkt, "ws-1", 0, 2*hour, jobs...)
	b2 := uploadBlock(t, bkt, "ws-1", 2*hour, 4*hour, "job-000", "only-in-b2")
	other := uploadBlock(t, bkt, "ws-2", 0, 2*hour, "secret")
	missing := ulid.MustNew(ulid.Now(), crand.Reader)

	// Read-ahead of a few bytes (a range read per chunk, windows ending
	// inside chunks) and of the default size give the same answer.
	for _, readAhead := range []int{1, 200, 512 << 10} {
		t.Run(fmt.Sprintf("read-ahead=%d", readAhead), func(t *testing.T) {
			c := startGateway(t, bkt, readAhead)
			served, got, _, err := selectAll(wsContext(t, "ws-1"), c, []string{b1.String(), b2.String(), missing.String(), other.String()}, 0, 4*hour,
				labels.MustNewMatcher(labels.MatchRegexp, "job", "job-00.|only-in-b2"))
			require.NoError(t, err)
			require.ElementsMatch(t, []string{b1.String(), b2.String()}, served, "a missing block, or another workspace's, is not served")
			require.Len(t, got, 11)
			require.Len(t, got["job-000"], 2*480, "both blocks' chunks")
			require.Len(t, got["job-005"], 480)
			require.Len(t, got["only-in-b2"], 480)
			require.Equal(t, int64(0), got["job-005"][0])
			require.Equal(t, 2*hour-15_000, got["job-005"][479])
		})
	}

	c := startGateway(t, bkt, 1024)
	_, names, err := labelsOf(wsContext(t, "ws-1"), c, []string{b2.String()}, 0, 4*hour, "")
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "job"}, names)
	served, values, err := labelsOf(wsContext(t, "ws-1"), c, []string{b2.String(), missing.String()}, 0, 4*hour, "job")
	require.NoError(t, err)
	require.Equal(t, []string{"job-000", "only-in-b2"}, values)
	require.Equal(t, []string{b2.String()}, served)

	// Hostile requests: a workspace ID that is a path, too many blocks.
	_, _, _, err = selectAll(wsContext(t, "../ws-2"), c, []string{other.String()}, 0, 4*hour)
	require.ErrorContains(t, err, "err-vigil-missing-tenant")
	many := make([]string, maxBlocksPerRequest+1)
	for i := range many {
		many[i] = b1.String()
	}
	_, _, _, err = selectAll(wsContext(t, "ws-1"), c, many, 0, 4*hour)
	require.ErrorContains(t, err, "at most 10000 per request")
}

// TestInProcessQuerierAnswersAsGRPC: the store-gateway called directly by
// the querier of the monolith gives the answers (and errors) of its gRPC
// API, and its series stay readable after the querier is closed and the
// blocks released.
func TestInProcessQuerierAnswersAsGRPC(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	hour := int64(time.Hour / time.Millisecond)
	b1 := uploadBlock(t, bkt, "ws-1", 0, 2*hour, "a", "b", "c")
	b2 := uploadBlock(t, bkt, "ws-1", 2*hour, 4*hour, "a", "d")
	g, remote := startGatewayAndClient(t, bkt, 64, testLimits{})
	ids := []string{b1.String(), b2.String()}
	notC := labels.MustNewMatcher(labels.MatchNotEqual, "job", "c")
	served, want, _, err := selectAll(wsContext(t, "ws-1"), remote, ids, 0, 4*hour, notC)
	require.NoError(t, err)
	require.ElementsMatch(t, ids, served)
	require.Len(t, want, 3)
	served, got, _, err := selectAll(wsContext(t, "ws-1"), g, ids, 0, 4*hour, notC)
	require.NoError(t, err)
	require.ElementsMatch(t, ids, served)
	require.Equal(t, want, got)

	_, values, err := labelsOf(wsContext(t, "ws-1"), g, []string{b1.String()}, 0, 4*hour, "job")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c"}, values)
	_, _, _, err = selectAll(wsContext(t, "../ws-1"), g, ids, 0, 4*hour, notC)
	require.ErrorContains(t, err, "err-vigil-missing-tenant")

	// Labels and chunks read before Close (the querier reads each series'
	// chunks as it moves to it, and PromQL holds them until the query ends)
	// stay readable after the querier is closed and the blocks released;
	// a chunk kept does not keep the whole range read ahead with it.
	q, err := g.Querier(wsContext(t, "ws-1"), ids, 0, 4*hour)
	require.NoError(t, err)
	ss := q.Select(wsContext(t, "ws-1"), true, nil, notC)
	kept := map[string][]chunkenc.Chunk{}
	var lsets []labels.Labels
	for ss.Next() {
		lsets = append(lsets, ss.At().Labels())
		job := ss.At().Labels().Get("job")
		it := ss.At().Iterator(nil)
		for it.Next() {
			c := it.At().Chunk
			require.LessOrEqual(t, cap(c.Bytes()), len(c.Bytes())+8, "a chunk is copied out of its read-ahead range")
			kept[job] = append(kept[job], c)
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	require.NoError(t, q.Close())
	g.blocks.closeIdle(time.Now().Add(time.Hour))
	later := map[string][]int64{}
	for job, chks := range kept {
		for _, c := range chks {
			ci := c.Iterator(nil)
			for ci.Next() == chunkenc.ValFloat {
				ts, _ := ci.At()
				later[job] = append(later[job], ts)
			}
		}
	}
	require.Equal(t, want, later)
	var jobs []string
	for _, ls := range lsets {
		jobs = append(jobs, ls.Get("job"))
	}
	require.Equal(t, []string{"a", "b", "d"}, jobs)

	// A labels-only select (the series API) reads no chunk, over gRPC and
	// in process.
	for _, c := range []client.StoreGateway{remote, g} {
		gets := g.stats.gets.Load()
		q, err := c.Querier(wsContext(t, "ws-1"), ids, 0, 4*hour)
		require.NoError(t, err)
		ss := q.Select(wsContext(t, "ws-1"), true, &storage.SelectHints{Start: 0, End: 4 * hour, Func: seriesFunc}, notC)
		n := 0
		for ss.Next() {
			n++
			it := ss.At().Iterator(nil)
			require.False(t, it.Next(), "no chunks")
		}
		require.NoError(t, ss.Err())
		require.NoError(t, q.Close())
		require.Equal(t, 3, n)
		require.Equal(t, gets, g.stats.gets.Load(), "nothing read from object storage")
	}
}

// TestRequestsOverTheWorkspaceLimitsFail: a store-gateway stops a request
// over the workspace's series or chunk-bytes limit with the limit's error.
func TestRequestsOverTheWorkspaceLimitsFail(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	hour := int64(time.Hour / time.Millisecond)
	b1 := uploadBlock(t, bkt, "ws-1", 0, 2*hour, "a", "b", "c", "d")
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	for _, tc := range []struct {
		limits testLimits
		err    string
	}{
		{testLimits{series: 4}, ""},
		{testLimits{series: 3}, "the query hit the max number of series limit (limit: 3 series, -querier.max-fetched-series-per-query) (err-vigil-max-series-per-query)"},
		{testLimits{bytes: 100}, "the query hit the aggregated chunks size limit (limit: 100 bytes, -querier.max-fetched-chunk-bytes-per-query) (err-vigil-max-chunk-bytes-per-query)"},
	} {
		g, c := startGatewayAndClient(t, bkt, 1024, tc.limits)
		// Over gRPC, and called in process.
		for _, c := range []client.StoreGateway{c, g} {
			_, _, n, err := selectAll(wsContext(t, "ws-1"), c, []string{b1.String()}, 0, 2*hour, up)
			if tc.err == "" {
				require.NoError(t, err)
				require.Equal(t, 4, n)
				continue
			}
			require.ErrorContains(t, err, tc.err, "%+v", tc.limits)
			require.Equal(t, http.StatusUnprocessableEntity, apierror.StatusOf(apierror.From(err)))
		}
	}
}

// countingBucket counts the bytes of index range reads, and fails them
// while fail is set.
type countingBucket struct {
	objstore.Bucket
	indexBytes atomic.Int64
	fail       atomic.Bool
}

func (b *countingBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if strings.HasSuffix(name, "/index") {
		if b.fail.Load() {
			return nil, errors.New("connection refused")
		}
		b.indexBytes.Add(length)
	}
	return b.Bucket.GetRange(ctx, name, off, length)
}

// TestIndexIsReadLazily: a sync fetches only a block's index header; a
// query fetches the postings and series it needs; a block reopened reads
// its header from local disk; an index read that fails fails the query.
func TestIndexIsReadLazily(t *testing.T) {
	inmem := objstore.NewInMemBucket()
	hour := int64(time.Hour / time.Millisecond)
	// Many series over few label values: the index header (symbols,
	// postings offset table) is a small part of the index.
	var sets []labels.Labels
	for i := 0; i < 20000; i += 1 {
		sets = append(sets, labels.FromStrings("__name__", "up", "instance", fmt.Sprintf("i-%03d", i%200), "job", fmt.Sprintf("job-%02d", i/200)))
	}
	b1 := uploadSeries(t, inmem, "ws-1", 0, 2*hour, sets)
	ws := bucket.ForWorkspace(inmem, "ws-1")
	attrs, err := ws.Attributes(context.Background(), b1.String()+"/index")
	require.NoError(t, err)
	scan, err := vtsdb.ScanBucket(context.Background(), ws, nil, time.Now())
	require.NoError(t, err)
	require.NoError(t, vtsdb.WriteIndex(context.Background(), ws, scan.Index))
	bkt := &countingBucket{Bucket: inmem}

	g, c := startGatewayAndClient(t, bkt, 1024, testLimits{})
	header := bkt.indexBytes.Load()
	require.Positive(t, header, "the sync fetched the header")
	require.Less(t, header, attrs.Size/2, "and only the header: %d of %d bytes", header, attrs.Size)

	query := func() (map[string][]int64, error) {
		_, got, _, err := selectAll(wsContext(t, "ws-1"), c, []string{b1.String()}, 0, 2*hour,
			labels.MustNewMatcher(labels.MatchEqual, "job", "job-12"), labels.MustNewMatcher(labels.MatchEqual, "instance", "i-034"))
		return got, err
	}
	got, err := query()
	require.NoError(t, err)
	require.Len(t, got["job-12"], 480, "one series")
	require.Greater(t, bkt.indexBytes.Load(), header, "the query fetched its postings and series")

	// Closed as idle, then opened again: the header and the pages read
	// before come from local disk.
	g.blocks.closeIdle(time.Now().Add(time.Hour))
	before := bkt.indexBytes.Load()
	got, err = query()
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, before, bkt.indexBytes.Load(), "nothing fetched again")

	// Other series, with object storage failing: an error, not an empty
	// answer, over gRPC and in process (where the index reader's panic
	// must not reach the querier's goroutine).
	bkt.fail.Store(true)
	for i, c := range []client.StoreGateway{c, g} {
		_, _, _, err = selectAll(wsContext(t, "ws-1"), c, []string{b1.String()}, 0, 2*hour,
			labels.MustNewMatcher(labels.MatchRegexp, "job", fmt.Sprintf("job-9%d", i)))
		require.ErrorContains(t, err, "could not read a block's index from object storage")
	}
}

// TestBlocksOfAWorkspaceWithoutIndexAreKept: a block of a workspace that
// has no bucket index yet, fetched for a query, survives the syncs until an
// index says whether it is wanted.
func TestBlocksOfAWorkspaceWithoutIndexAreKept(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	b1 := uploadBlock(t, bkt, "ws-1", 0, 7_200_000, "a")
	g, c := startGatewayAndClient(t, bkt, 1024, testLimits{})
	_, got, _, err := selectAll(wsContext(t, "ws-1"), c, []string{b1.String()}, 0, 7_200_000, labels.MustNewMatcher(labels.MatchEqual, "job", "a"))
	require.NoError(t, err)
	require.Len(t, got, 1)
	dir := g.blocks.get("ws-1", b1).dir
	require.DirExists(t, dir)

	require.NoError(t, g.Sync(context.Background()))
	require.DirExists(t, dir, "no index yet: the block a query fetched stays")

	require.NoError(t, vtsdb.WriteIndex(context.Background(), bucket.ForWorkspace(bkt, "ws-1"), &vtsdb.Index{Version: 1, UpdatedAt: time.Now().Unix()}))
	require.NoError(t, g.Sync(context.Background()))
	require.NoDirExists(t, dir, "the index does not list it: it goes")
}

// TestFailedStartLeavesNothingRunning: a store-gateway whose start fails
// after its lifecycler joined the ring (it cannot turn ACTIVE) has, by the
// time the start returned, left the ring, and no goroutine of it runs.
func TestFailedStartLeavesNothingRunning(t *testing.T) {
	leaks := goleak.IgnoreCurrent() // what runs before the test
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.Ring.InstanceID, cfg.Ring.InstanceAddr = "sg-1", "127.0.0.1"
	kv := ringtest.NewKV(t)
	reg := prometheus.NewRegistry()
	r, err := ringmember.NewRing(cfg.Ring, RingName, RingKey, ringmember.Store{Client: kv}, reg, log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	defer func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r)) }()
	g, err := New(cfg, t.TempDir(), objstore.NewInMemBucket(), r, joinRing(t, cfg, ringmember.Store{Client: ringtest.RefuseActive(kv, "sg-1")}, r), testLimits{}, reg, log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, g.StartAsync(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.ErrorContains(t, g.AwaitTerminated(ctx), "refuses to make sg-1 ACTIVE")
	// As the start returned, not some time later:
	require.Equal(t, services.Failed, g.member.State(), "its membership is stopped")
	require.NotContains(t, ringtest.Instances(t, kv, RingKey), "sg-1", "the store-gateway left the ring")
}

// joinRing makes the store-gateway's membership of r in store, as the
// process does.
func joinRing(t *testing.T, cfg Config, store ringmember.Store, r *ring.Ring) *ringmember.ActiveMember {
	t.Helper()
	m, err := ringmember.Join(cfg.Ring, RingName, RingKey, store, r, ringmember.Member{GRPCPort: 9095}, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	return m
}
