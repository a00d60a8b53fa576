package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

// storeFlags make a monolith read samples older than an hour from object
// storage only, and notice new blocks within a second.
var storeFlags = []string{
	"-querier.query-ingesters-within=1h", "-querier.query-store-after=0",
	"-querier.bucket-index-update-period=1s", "-compactor.cleanup-interval=1s",
	// The old samples are hours old: backfilled, as an operator may allow.
	"-validation.past-grace-period=0",
}

// sampleSet is the data of the long-term storage tests: old samples (two to
// three hours ago, in blocks once flushed) and recent ones (in the heads).
type sampleSet struct {
	now      time.Time
	old, new []prompb.TimeSeries
}

func newSampleSet(now time.Time) sampleSet {
	s := sampleSet{now: now}
	for i := 0; i < 5; i++ {
		lbls := []prompb.Label{{Name: "__name__", Value: "lts_requests_total"}, {Name: "instance", Value: fmt.Sprintf("i%d", i)}, {Name: "job", Value: "lts"}}
		var old, recent []prompb.Sample
		for ts := now.Add(-3 * time.Hour); ts.Before(now.Add(-2 * time.Hour)); ts = ts.Add(30 * time.Second) {
			old = append(old, prompb.Sample{Timestamp: ts.UnixMilli(), Value: float64(ts.Unix()%100000) * float64(i+1)})
		}
		for ts := now.Add(-40 * time.Minute); ts.Before(now); ts = ts.Add(30 * time.Second) {
			recent = append(recent, prompb.Sample{Timestamp: ts.UnixMilli(), Value: float64(ts.Unix()%100000) * float64(i+1)})
		}
		s.old = append(s.old, prompb.TimeSeries{Labels: lbls, Samples: old})
		s.new = append(s.new, prompb.TimeSeries{Labels: lbls, Samples: recent})
	}
	return s
}

// reference is a Prometheus TSDB and PromQL engine holding the same samples.
func (s sampleSet) reference(t *testing.T) (*tsdb.DB, *promql.Engine) {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), promslog.NewNopLogger(), nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	app := db.Appender(context.Background())
	for _, set := range [][]prompb.TimeSeries{s.old, s.new} {
		for _, ts := range set {
			b := labels.NewScratchBuilder(len(ts.Labels))
			for _, l := range ts.Labels {
				b.Add(l.Name, l.Value)
			}
			ls := b.Labels()
			for _, smp := range ts.Samples {
				_, err := app.Append(0, ls, smp.Timestamp, smp.Value)
				require.NoError(t, err)
			}
		}
	}
	require.NoError(t, app.Commit())
	return db, promql.NewEngine(promql.EngineOpts{MaxSamples: 10_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
}

var storageQueries = []string{
	`lts_requests_total`,
	`sum by (job) (rate(lts_requests_total[5m]))`,
	`max_over_time(lts_requests_total{instance=~"i[0-2]"}[10m])`,
	`count(lts_requests_total)`,
}

type rangeResult map[string][]model.SamplePair

func fromAPI(t *testing.T, v model.Value) rangeResult {
	t.Helper()
	m, ok := v.(model.Matrix)
	require.True(t, ok, "want a matrix, got %T", v)
	out := rangeResult{}
	for _, s := range m {
		out[s.Metric.String()] = s.Values
	}
	return out
}

func fromEngine(t *testing.T, db *tsdb.DB, eng *promql.Engine, q string, start, end time.Time, step time.Duration) rangeResult {
	t.Helper()
	qry, err := eng.NewRangeQuery(context.Background(), db, nil, q, start, end, step)
	require.NoError(t, err)
	defer qry.Close()
	res := qry.Exec(context.Background())
	require.NoError(t, res.Err)
	m, err := res.Matrix()
	require.NoError(t, err)
	out := rangeResult{}
	for _, s := range m {
		metric := model.Metric{}
		s.Metric.Range(func(l labels.Label) { metric[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
		var pairs []model.SamplePair
		for _, p := range s.Floats {
			pairs = append(pairs, model.SamplePair{Timestamp: model.Time(p.T), Value: model.SampleValue(p.F)})
		}
		out[metric.String()] = pairs
	}
	return out
}

func queryRange(t *testing.T, api promv1.API, q string, start, end time.Time, step time.Duration) rangeResult {
	t.Helper()
	v, _, _, err := api.QueryRange(context.Background(), q, promv1.Range{Start: start, End: end, Step: step})
	require.NoError(t, err, q)
	return fromAPI(t, v)
}

// storageBackend is the object storage of a test: Vigil's flags for it and
// a client to look into it.
type storageBackend struct {
	flags []string
	bkt   objstore.Bucket
}

// filesystemBackend is a bucket in a directory of its own.
func filesystemBackend(t *testing.T) storageBackend {
	t.Helper()
	dir := t.TempDir()
	bkt, err := filesystem.NewBucket(dir)
	require.NoError(t, err)
	return storageBackend{flags: []string{"-storage.filesystem.dir=" + dir}, bkt: bkt}
}

func TestQueriesSpanIngestersAndStore(t *testing.T) {
	testQueriesSpanIngestersAndStore(t, filesystemBackend(t))
}

func TestDeletedWorkspaceDataIsGone(t *testing.T) {
	testDeletedWorkspaceDataIsGone(t, filesystemBackend(t))
}

// waitForBlocks waits until the workspace's bucket index lists n blocks.
func waitForBlocks(t testing.TB, bkt objstore.Bucket, ws string, n int) *vtsdb.Index {
	t.Helper()
	var idx *vtsdb.Index
	var err error
	require.Eventually(t, func() bool {
		idx, err = vtsdb.ReadIndex(context.Background(), bucket.ForWorkspace(bkt, ws))
		return err == nil && len(idx.Blocks) >= n
	}, 30*time.Second, 100*time.Millisecond, "the bucket index never listed %d blocks", n)
	return idx
}

func flush(t *testing.T, adminAddr string) {
	t.Helper()
	resp, err := http.Post("http://"+adminAddr+"/ingester/flush", "", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}

// testQueriesSpanIngestersAndStore: samples older than an hour are read
// from the blocks the ingester uploaded (through the store-gateway), recent
// ones from the ingester; the answers equal a Prometheus holding the same
// data. Then, with the ingester stopped and every local file gone, a
// store-gateway alone answers the old range the same.
func testQueriesSpanIngestersAndStore(t *testing.T, store storageBackend) {
	dir := t.TempDir()
	flags := append(append([]string{}, store.flags...), storeFlags...)
	v := startMonolith(t, dir, flags...)
	ws := createWorkspace(t, v.BaseURL(), "lts")
	rw := remoteWriter(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write")
	data := newSampleSet(time.Now().Truncate(time.Second))

	_, err := rw.Store(context.Background(), encode(t, &prompb.WriteRequest{Timeseries: data.old}), 0)
	require.NoError(t, err)
	flush(t, v.AdminAddr())
	_, err = rw.Store(context.Background(), encode(t, &prompb.WriteRequest{Timeseries: data.new}), 0)
	require.NoError(t, err)
	waitForBlocks(t, store.bkt, ws, 1)
	time.Sleep(1100 * time.Millisecond) // the querier's index is at most a second old

	db, eng := data.reference(t)
	api := promClient(t, workspaceURL(v.BaseURL(), ws))
	start, end, step := data.now.Add(-3*time.Hour), data.now, time.Minute
	oldEnd := data.now.Add(-2 * time.Hour)
	for _, q := range storageQueries {
		want := fromEngine(t, db, eng, q, start, end, step)
		require.NotEmpty(t, want, q)
		require.Equal(t, want, queryRange(t, api, q, start, end, step), "ingester and store time: %s", q)
	}
	before := map[string]rangeResult{}
	for _, q := range storageQueries {
		before[q] = queryRange(t, api, q, start, oldEnd, step)
		require.Equal(t, fromEngine(t, db, eng, q, start, oldEnd, step), before[q], q)
	}

	// Stop it, delete every local file, and serve from a store-gateway alone.
	require.NoError(t, v.Stop())
	require.DirExists(t, filepath.Join(dir, "ingester", "tsdb", ws))
	require.NoError(t, os.RemoveAll(dir))
	sg := startMonolith(t, dir, append([]string{"-target=querier,store-gateway"}, flags...)...)
	api = promClient(t, workspaceURL(sg.BaseURL(), ws))
	for _, q := range storageQueries {
		require.Equal(t, before[q], queryRange(t, api, q, start, oldEnd, step), "from the store-gateway alone: %s", q)
	}
	names, _, _, err := api.LabelNames(context.Background(), nil, start, oldEnd)
	require.NoError(t, err)
	require.Equal(t, model.LabelNames{"__name__", "instance", "job"}, names)
	values, _, _, err := api.LabelValues(context.Background(), "instance", nil, start, oldEnd)
	require.NoError(t, err)
	require.Len(t, values, 5)
}

// testDeletedWorkspaceDataIsGone: once a workspace is deleted its data is
// not queryable at once; after the grace period its blocks are gone from
// the bucket and its TSDB and WAL from the ingester's disk, while another
// workspace keeps everything.
func testDeletedWorkspaceDataIsGone(t *testing.T, store storageBackend) {
	dir := t.TempDir()
	v := startMonolith(t, dir, append(append([]string{
		"-compactor.workspace-deletion-delay=2s", "-ingester.tsdb.deleted-workspaces-check-interval=1s",
	}, store.flags...), storeFlags...)...)
	data := newSampleSet(time.Now().Truncate(time.Second))
	var gone, kept string
	for i, alias := range []string{"gone", "kept"} {
		ws := createWorkspace(t, v.BaseURL(), alias)
		rw := remoteWriter(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write")
		_, err := rw.Store(context.Background(), encode(t, &prompb.WriteRequest{Timeseries: data.old}), 0)
		require.NoError(t, err)
		flush(t, v.AdminAddr())
		_, err = rw.Store(context.Background(), encode(t, &prompb.WriteRequest{Timeseries: data.new}), 0)
		require.NoError(t, err)
		waitForBlocks(t, store.bkt, ws, 1)
		if i == 0 {
			gone = ws
		} else {
			kept = ws
		}
	}

	req, err := http.NewRequest(http.MethodDelete, v.BaseURL()+"/workspaces/"+gone, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	_, _, _, err = promClient(t, workspaceURL(v.BaseURL(), gone)).Query(context.Background(), "lts_requests_total", data.now)
	require.ErrorContains(t, err, "404", "not queryable from the moment it is deleted")

	objects := func(ws string) []string {
		var out []string
		require.NoError(t, bucket.ForWorkspace(store.bkt, ws).Iter(context.Background(), "", func(name string) error {
			out = append(out, name)
			return nil
		}, objstore.WithRecursiveIter()))
		return out
	}
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(dir, "ingester", "tsdb", gone))
		return os.IsNotExist(err)
	}, 30*time.Second, 100*time.Millisecond, "the ingester removes the deleted workspace's TSDB and WAL")
	require.Eventually(t, func() bool {
		o := objects(gone)
		return len(o) == 1 && o[0] == vtsdb.WorkspaceDeletionMarkName
	}, 30*time.Second, 100*time.Millisecond, "only the deletion mark is left in the bucket")

	require.DirExists(t, filepath.Join(dir, "ingester", "tsdb", kept))
	require.Greater(t, len(objects(kept)), 3)
	time.Sleep(1100 * time.Millisecond)
	db, eng := data.reference(t)
	start, end := data.now.Add(-3*time.Hour), data.now
	q := storageQueries[1]
	require.Equal(t, fromEngine(t, db, eng, q, start, end, time.Minute), queryRange(t, promClient(t, workspaceURL(v.BaseURL(), kept)), q, start, end, time.Minute))
}

// TestWithoutCompactorOldDataIsFound: with no compactor (a new workspace's
// first hours, or the compactor down) there is no bucket index; a query of
// a range only object storage holds finds the ingester's uploaded blocks by
// listing the bucket, and answers them, never an empty result. Labels too.
func TestWithoutCompactorOldDataIsFound(t *testing.T) {
	store := filesystemBackend(t)
	flags := append(append([]string{"-target=distributor,api,ingester,querier,store-gateway"}, store.flags...), storeFlags...)
	v := startMonolith(t, t.TempDir(), flags...)
	ws := createWorkspace(t, v.BaseURL(), "no-compactor")
	rw := remoteWriter(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write")
	data := newSampleSet(time.Now().Truncate(time.Second))
	_, err := rw.Store(context.Background(), encode(t, &prompb.WriteRequest{Timeseries: data.old}), 0)
	require.NoError(t, err)
	flush(t, v.AdminAddr())
	require.Eventually(t, func() bool {
		idx, err := vtsdb.ListBlocks(context.Background(), bucket.ForWorkspace(store.bkt, ws), nil, time.Now(), 0)
		return err == nil && len(idx.Blocks) > 0
	}, 30*time.Second, 100*time.Millisecond, "the ingester never uploaded a block")
	_, err = vtsdb.ReadIndex(context.Background(), bucket.ForWorkspace(store.bkt, ws))
	require.ErrorIs(t, err, vtsdb.ErrIndexNotFound, "no compactor, no index")
	time.Sleep(1100 * time.Millisecond) // a listing the querier cached is at most a second old

	db, eng := data.reference(t)
	api := promClient(t, workspaceURL(v.BaseURL(), ws))
	// Older than -querier.query-ingesters-within (1h): object storage only.
	start, end, step := data.now.Add(-3*time.Hour), data.now.Add(-2*time.Hour), time.Minute
	for _, q := range storageQueries {
		want := fromEngine(t, db, eng, q, start, end, step)
		require.NotEmpty(t, want, q)
		require.Equal(t, want, queryRange(t, api, q, start, end, step), q)
	}
	values, _, _, err := api.LabelValues(context.Background(), "instance", nil, start, end)
	require.NoError(t, err)
	require.Len(t, values, 5)
}
