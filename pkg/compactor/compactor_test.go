package compactor

import (
	"context"
	"flag"
	"path/filepath"
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

	"github.com/vigil-metrics/vigil/pkg/ringmember"
	"github.com/vigil-metrics/vigil/pkg/ringmember/ringtest"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

const hour = int64(time.Hour / time.Millisecond)

type fixedRetention map[string]time.Duration

func (f fixedRetention) RetentionPeriod(ws string) time.Duration { return f[ws] }

type existing map[string]bool

func (e existing) Exists(_ context.Context, id string) (bool, error) { return e[id], nil }

// testClock is a clock tests move while the compactor runs.
type testClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *testClock {
	c := &testClock{}
	c.set(t)
	return c
}
func (c *testClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *testClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// testCompactor starts a compactor on bkt after applying opts to it.
func testCompactor(t testing.TB, bkt objstore.Bucket, lim Limits, ws Workspaces, opts ...func(*Compactor)) *Compactor {
	t.Helper()
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.Ring.InstanceID, cfg.Ring.InstanceAddr = "compactor-1", "127.0.0.1"
	cfg.Ring.HeartbeatPeriod = 100 * time.Millisecond
	cfg.FirstLevelWait = 0
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	c, err := newInRing(t, cfg, ringmember.Store{Client: kv}, func(r *ring.Ring, m *ringmember.ActiveMember) (*Compactor, error) {
		return New(cfg, t.TempDir(), bkt, r, m, lim, ws, prometheus.NewRegistry(), log.NewNopLogger())
	})
	require.NoError(t, err)
	for _, o := range opts {
		o(c)
	}
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), c))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), c) })
	return c
}

// sample is one float sample of a series named by its job label.
type sample struct {
	job string
	t   int64
	v   float64
}

// uploadBlock writes the samples into a block and uploads it as one
// ingester of zone would.
func uploadBlock(t *testing.T, bkt objstore.Bucket, ws, zone string, samples []sample) ulid.ULID {
	t.Helper()
	byJob := map[string][]chunks.Sample{}
	var order []string
	for _, s := range samples {
		if _, ok := byJob[s.job]; !ok {
			order = append(order, s.job)
		}
		byJob[s.job] = append(byJob[s.job], sampleOf(s))
	}
	var series []storage.Series
	for _, job := range order {
		series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "up", "job", job), byJob[job]))
	}
	dir := t.TempDir()
	bdir, err := tsdb.CreateBlock(series, dir, 0, promslog.NewNopLogger())
	require.NoError(t, err)
	meta, err := vtsdb.ReadLocalMeta(bdir)
	require.NoError(t, err)
	meta.Vigil = vtsdb.Origin{Workspace: ws, Source: vtsdb.SourceIngester, Ingester: "ingester-" + zone, Zone: zone}
	require.NoError(t, vtsdb.Upload(context.Background(), log.NewNopLogger(), bucket.ForWorkspace(bkt, ws), bdir, meta))
	return meta.ULID
}

type fsample struct {
	t int64
	f float64
}

func (s fsample) T() int64                      { return s.t }
func (s fsample) F() float64                    { return s.f }
func (s fsample) H() *histogram.Histogram       { return nil }
func (s fsample) FH() *histogram.FloatHistogram { return nil }
func (s fsample) ST() int64                     { return 0 }
func (s fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fsample) Copy() chunks.Sample           { return s }

func sampleOf(s sample) chunks.Sample { return fsample{s.t, s.v} }

// liveBlocks returns the unmarked blocks of the workspace's bucket index.
func liveBlocks(t *testing.T, bkt objstore.Bucket, ws string) []vtsdb.Block {
	t.Helper()
	idx, err := vtsdb.ReadIndex(context.Background(), bucket.ForWorkspace(bkt, ws))
	require.NoError(t, err)
	var out []vtsdb.Block
	for _, b := range idx.Blocks {
		if _, marked := idx.DeletionMark(b.ID); !marked {
			out = append(out, b)
		}
	}
	return out
}

// readBlocks returns every sample of the given blocks, merged as a query
// would, keyed by job.
func readBlocks(t *testing.T, bkt objstore.Bucket, ws string, ids ...ulid.ULID) map[string][]fsample {
	t.Helper()
	var queriers []storage.Querier
	for _, id := range ids {
		dir := filepath.Join(t.TempDir(), id.String())
		require.NoError(t, objstore.DownloadDir(context.Background(), log.NewNopLogger(), bucket.ForWorkspace(bkt, ws), id.String(), id.String(), dir))
		b, err := tsdb.OpenBlock(nil, dir, nil, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		q, err := tsdb.NewBlockQuerier(b, 0, 1<<62)
		require.NoError(t, err)
		queriers = append(queriers, q)
	}
	q := storage.NewMergeQuerier(queriers, nil, storage.ChainedSeriesMerge)
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	out := map[string][]fsample{}
	for ss.Next() {
		it := ss.At().Iterator(nil)
		job := ss.At().Labels().Get("job")
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			out[job] = append(out[job], fsample{ts, v})
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	return out
}

func ids(blocks []vtsdb.Block) []ulid.ULID {
	out := make([]ulid.ULID, len(blocks))
	for i, b := range blocks {
		out[i] = b.ID
	}
	return out
}

// TestReplicaBlocksBecomeOne: the three zones' copies of one range, each
// having missed a different sample, compact into one block holding every
// sample once.
func TestReplicaBlocksBecomeOne(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	var all []sample
	for i := int64(0); i < 120; i++ {
		for _, job := range []string{"a", "b", "c"} {
			all = append(all, sample{job, i * 60_000, float64(i)})
		}
	}
	without := func(skip int) []sample {
		var out []sample
		for i, s := range all {
			if i != skip {
				out = append(out, s)
			}
		}
		return out
	}
	var replicas []ulid.ULID
	for i, zone := range []string{"a", "b", "c"} {
		replicas = append(replicas, uploadBlock(t, bkt, "ws-1", zone, without(i*50)))
	}
	want := readBlocks(t, bkt, "ws-1", replicas...)

	c := testCompactor(t, bkt, fixedRetention{}, nil)
	require.NoError(t, c.RunCompaction(context.Background()))
	live := liveBlocks(t, bkt, "ws-1")
	require.Len(t, live, 1)
	require.Equal(t, uint64(len(all)), live[0].Samples, "each sample once")
	require.Equal(t, vtsdb.SourceCompactor, live[0].Source)
	require.Equal(t, want, readBlocks(t, bkt, "ws-1", live[0].ID))
	require.Len(t, want["a"], 120)
}

// TestLevelledCompaction: six 2 h blocks of one 12 h range become one 12 h
// block holding the same samples, once newer blocks show the range is over
// (the TSDB's planner leaves the newest block alone).
func TestLevelledCompaction(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	var blocks []ulid.ULID
	for b := int64(0); b < 8; b++ {
		var s []sample
		for m := int64(0); m < 120; m += 5 {
			s = append(s, sample{"a", b*2*hour + m*60_000, float64(b*1000 + m)})
		}
		blocks = append(blocks, uploadBlock(t, bkt, "ws-1", "a", s))
	}
	want := readBlocks(t, bkt, "ws-1", blocks...)

	c := testCompactor(t, bkt, fixedRetention{}, nil)
	require.NoError(t, c.RunCompaction(context.Background()))
	live := liveBlocks(t, bkt, "ws-1")
	require.Len(t, live, 3, "one 12h block and the two newest 2h blocks")
	var ranges []int64
	for _, b := range live {
		ranges = append(ranges, b.MaxTime-b.MinTime)
	}
	require.Contains(t, ranges, 12*hour-5*60_000+1, "the 12 h block spans its samples")
	require.Equal(t, want, readBlocks(t, bkt, "ws-1", ids(live)...))
}

func TestRetentionPerWorkspace(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	now := time.Now()
	day := 24 * hour
	old := now.UnixMilli() - 10*day
	for _, ws := range []string{"ws-default", "ws-short", "ws-long"} {
		uploadBlock(t, bkt, ws, "a", []sample{{"a", old, 1}, {"a", old + 60_000, 2}})
		uploadBlock(t, bkt, ws, "a", []sample{{"a", now.UnixMilli() - 2*day, 3}})
	}
	clock := newClock(now)
	c := testCompactor(t, bkt, fixedRetention{"ws-default": 30 * 24 * time.Hour, "ws-short": 5 * 24 * time.Hour, "ws-long": 400 * 24 * time.Hour}, nil,
		func(c *Compactor) {
			c.cfg.FirstLevelWait = time.Hour // no compaction: retention alone
			c.now = clock.now
		})

	require.NoError(t, c.RunCleanup(context.Background()))
	require.Len(t, liveBlocks(t, bkt, "ws-default"), 2)
	require.Len(t, liveBlocks(t, bkt, "ws-short"), 1, "the 10-day-old block is past a 5-day retention")
	require.Len(t, liveBlocks(t, bkt, "ws-long"), 2)

	clock.set(now.Add(25 * 24 * time.Hour)) // 35 days after the old block
	require.NoError(t, c.RunCleanup(context.Background()))
	require.Len(t, liveBlocks(t, bkt, "ws-default"), 1)
	require.Len(t, liveBlocks(t, bkt, "ws-short"), 0)
	require.Len(t, liveBlocks(t, bkt, "ws-long"), 2)

	clock.add(c.cfg.DeletionDelay)
	require.NoError(t, c.RunCleanup(context.Background()))
	for ws, n := range map[string]int{"ws-default": 1, "ws-short": 0, "ws-long": 2} {
		scan, err := vtsdb.ScanBucket(context.Background(), bucket.ForWorkspace(bkt, ws), nil, clock.now())
		require.NoError(t, err)
		require.Len(t, scan.Index.Blocks, n, "marked blocks are deleted from the bucket after the delay: %s", ws)
	}
}

func TestDeletedWorkspaceDataGoesAfterDelay(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	now := time.Now()
	uploadBlock(t, bkt, "ws-gone", "a", []sample{{"a", now.UnixMilli(), 1}})
	uploadBlock(t, bkt, "ws-orphan", "a", []sample{{"a", now.UnixMilli(), 1}})
	uploadBlock(t, bkt, "ws-kept", "a", []sample{{"a", now.UnixMilli(), 1}})
	require.NoError(t, vtsdb.WriteWorkspaceDeletionMark(context.Background(), bucket.ForWorkspace(bkt, "ws-gone"), now))

	clock := newClock(now)
	c := testCompactor(t, bkt, fixedRetention{}, existing{"ws-gone": false, "ws-kept": true}, func(c *Compactor) { c.now = clock.now })
	require.NoError(t, c.RunCleanup(context.Background()))
	require.NotEmpty(t, objectsOf(t, bkt, "ws-gone"), "kept during the delay")

	clock.set(now.Add(c.cfg.WorkspaceDeletionDelay))
	require.NoError(t, c.RunCleanup(context.Background()))
	for _, ws := range []string{"ws-gone", "ws-orphan"} {
		require.Equal(t, []string{vtsdb.WorkspaceDeletionMarkName}, objectsOf(t, bkt, ws), "only the deletion mark remains: %s", ws)
	}
	require.Len(t, liveBlocks(t, bkt, "ws-kept"), 1)
}

func objectsOf(t *testing.T, bkt objstore.Bucket, ws string) []string {
	t.Helper()
	var out []string
	require.NoError(t, bucket.ForWorkspace(bkt, ws).Iter(context.Background(), "", func(name string) error {
		out = append(out, name)
		return nil
	}, objstore.WithRecursiveIter()))
	return out
}

// TestFailedStartLeavesNothingRunning: a compactor whose ring client cannot
// start (its store cannot be read) fails to start, and leaves the ring and
// no goroutine behind: its lifecycler, which joined meanwhile, is stopped
// with it.
func TestFailedStartLeavesNothingRunning(t *testing.T) {
	leaks := goleak.IgnoreCurrent() // what runs before the test
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.Ring.InstanceID, cfg.Ring.InstanceAddr = "compactor-1", "127.0.0.1"
	kv := ringtest.NewKV(t)
	c, err := newInRing(t, cfg, ringmember.Store{Client: ringtest.Unreadable(kv)}, func(r *ring.Ring, m *ringmember.ActiveMember) (*Compactor, error) {
		return New(cfg, t.TempDir(), objstore.NewInMemBucket(), r, m, fixedRetention{}, nil, prometheus.NewRegistry(), log.NewNopLogger())
	})
	require.NoError(t, err)
	require.NoError(t, c.StartAsync(context.Background()))
	require.ErrorContains(t, c.AwaitTerminated(context.Background()), "cannot be read")
	require.Equal(t, services.Failed, c.State())
	// When the start has failed, not some time later:
	require.NotEqual(t, services.Running, c.member.State(), "its membership is not running")
	require.NotContains(t, ringtest.Instances(t, kv, RingKey), "compactor-1", "the compactor left the ring")
}

// newInRing makes the compactor ring's client and membership in store, as
// the process does, and the compactor over them.
func newInRing(t testing.TB, cfg Config, store ringmember.Store, build func(*ring.Ring, *ringmember.ActiveMember) (*Compactor, error)) (*Compactor, error) {
	t.Helper()
	r, err := ringmember.NewRing(cfg.Ring, RingName, RingKey, store, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	m, err := ringmember.Join(cfg.Ring, RingName, RingKey, store, r, ringmember.Member{GRPCPort: 9095}, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	return build(r, m)
}
