//go:build e2e

package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
)

const clusterSeries = 20

// ackedWriter pushes one sample per series every interval and remembers every
// sample the cluster acknowledged.
type ackedWriter struct {
	mu     sync.Mutex
	acked  []int64 // timestamps of acknowledged pushes; each covers every series
	failed []string
}

// run pushes until stop is closed. It runs on its own goroutine, so it
// records failures instead of failing the test.
func (w *ackedWriter) run(rw remote.WriteClient, stop <-chan struct{}) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		ts := time.Now().UnixMilli()
		req := &prompb.WriteRequest{}
		for i := 0; i < clusterSeries; i++ {
			req.Timeseries = append(req.Timeseries, series("cluster_test_metric", map[string]string{"series": fmt.Sprint(i)},
				prompb.Sample{Timestamp: ts, Value: float64(ts % 100000)}))
		}
		raw, err := req.Marshal()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err = rw.Store(ctx, snappy.Encode(nil, raw), 0)
			cancel()
		}
		w.mu.Lock()
		if err != nil {
			w.failed = append(w.failed, err.Error())
		} else {
			w.acked = append(w.acked, ts)
		}
		w.mu.Unlock()
	}
}

// waitAcks waits until n more pushes than now have been acknowledged.
func (w *ackedWriter) waitAcks(t *testing.T, n int) {
	t.Helper()
	acked, _ := w.snapshot()
	target := len(acked) + n
	require.Eventually(t, func() bool { a, _ := w.snapshot(); return len(a) >= target }, 60*time.Second, 20*time.Millisecond,
		"the writer did not get %d more acknowledgements", n)
}

func (w *ackedWriter) snapshot() ([]int64, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.acked...), append([]string(nil), w.failed...)
}

// cluster is 1 distributor (with the control plane), 3 ingesters in 3 zones
// with RF=3 and 1 querier, each a process of the built binary.
type cluster struct {
	ingesters []*process
	dist      *process
	quer      *process
	// common are the flags every process of the cluster shares, with its
	// own data directory.
	common func(dataDir string) []string
}

func startCluster(t *testing.T, extra ...string) *cluster {
	root := t.TempDir()
	bucketDir := filepath.Join(root, "bucket")
	common := func(dataDir string) []string {
		return append([]string{
			"-data-dir=" + filepath.Join(root, dataDir),
			"-storage.filesystem.dir=" + bucketDir,
			"-ingester.ring.replication-factor=3", "-ingester.ring.zone-awareness-enabled=true",
			"-ingester.ring.heartbeat-period=1s",
		}, extra...)
	}
	c := &cluster{common: common}
	for _, zone := range []string{"a", "b", "c"} {
		p := newProcess(t, "ingester-"+zone, append(common("ingester-"+zone),
			"-target=ingester",
			"-ingester.ring.instance-id=ingester-"+zone,
			"-ingester.ring.instance-addr=127.0.0.1",
			"-ingester.ring.instance-zone=zone-"+zone)...)
		c.ingesters = append(c.ingesters, p)
	}
	c.dist = newProcess(t, "distributor", append(common("distributor"), "-target=distributor,api")...)
	c.quer = newProcess(t, "querier", append(common("querier"), "-target=querier")...)
	// Every process joins the gossip of the others' current runs: the first
	// starts alone, the rest join it, a restarted one joins whoever runs.
	for _, p := range c.all() {
		p.join = func() string { return gossipOf(c.others(p)...) }
	}
	first := c.ingesters[0]
	first.start()
	for _, p := range c.others(first) {
		p.startAsync()
	}
	for _, p := range c.others(first) {
		p.waitStarted()
	}
	for _, p := range c.all() {
		waitReady(t, p.base())
	}
	waitRingActive(t, c.dist.admin(), 3)
	waitRingActive(t, c.quer.admin(), 3)
	return c
}

// others is every process of the cluster but p.
func (c *cluster) others(p *process) []*process {
	var out []*process
	for _, o := range c.all() {
		if o != p {
			out = append(out, o)
		}
	}
	return out
}

func (c *cluster) all() []*process {
	return append(append([]*process{}, c.ingesters...), c.dist, c.quer)
}

// stopAll stops every process with SIGTERM; each must exit 0.
func (c *cluster) stopAll() {
	c.dist.stop()
	c.quer.stop()
	for _, p := range c.ingesters {
		p.stop()
	}
}

// TestClusterKillIngester runs a cluster. While a writer pushes
// continuously, one ingester is killed with SIGKILL: pushes keep succeeding
// and every acknowledged sample stays queryable. Restarted, the ingester's
// WAL brings its copy back.
func TestClusterKillIngester(t *testing.T) {
	c := startCluster(t)
	ingesters, dist, quer := c.ingesters, c.dist, c.quer

	ws := createWorkspace(t, dist.base(), "cluster")
	w := &ackedWriter{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	rw := remoteWriter(t, workspaceURL(dist.base(), ws)+"/api/v1/remote_write")
	go func() { defer wg.Done(); w.run(rw, stop) }()

	w.waitAcks(t, 20)
	victim := ingesters[1]
	victim.kill()
	killedAt := time.Now().UnixMilli()
	w.waitAcks(t, 30) // about 3 s of writes with one ingester down

	ackedBefore, failed := w.snapshot()
	require.Empty(t, failed, "pushes failed while one ingester of three was down")
	require.Greater(t, len(ackedBefore), 30)
	requireAllQueryable(t, quer.base(), ws, ackedBefore)

	// Restart the victim: its WAL holds every sample it acknowledged before
	// the kill; it catches up on new samples from then on.
	victim.start()
	waitReady(t, victim.base())
	w.waitAcks(t, 20)
	close(stop)
	wg.Wait()

	acked, failed := w.snapshot()
	require.Empty(t, failed, "pushes failed during the ingester's restart")
	requireAllQueryable(t, quer.base(), ws, acked)

	var beforeKill []int64
	for _, ts := range ackedBefore {
		// Pushes in flight at the kill may have missed the victim; everything
		// acknowledged a second earlier was on it.
		if ts < killedAt-1000 {
			beforeKill = append(beforeKill, ts)
		}
	}
	got := ingesterSamples(t, victim.grpcAddr(), ws)
	for i := 0; i < clusterSeries; i++ {
		have := map[int64]bool{}
		for _, s := range got[fmt.Sprint(i)] {
			have[s] = true
		}
		for _, ts := range beforeKill {
			require.True(t, have[ts], "restarted ingester lost sample %d of series %d", ts, i)
		}
	}
	c.stopAll()
}

// waitRingActive waits until the ring page of a process's admin listener
// lists n ACTIVE ingesters.
func waitRingActive(t *testing.T, base string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/ingester/ring")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return countOccurrences(string(b), "ACTIVE") >= n
	}, 30*time.Second, 200*time.Millisecond, "ring at %s never had %d ACTIVE ingesters", base, n)
}

func countOccurrences(s, sub string) int {
	n := 0
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			n++
		}
	}
	return n
}

// requireAllQueryable checks through the querier that every series has a
// sample at every acknowledged timestamp.
func requireAllQueryable(t *testing.T, base, ws string, acked []int64) {
	t.Helper()
	api := promClient(t, workspaceURL(base, ws))
	start := time.UnixMilli(acked[0])
	end := time.UnixMilli(acked[len(acked)-1])
	// A range selector returns raw samples: one instant query over the span.
	span := end.Sub(start) + time.Second
	val, _, _, err := api.Query(context.Background(), fmt.Sprintf("cluster_test_metric[%dms]", span.Milliseconds()), end)
	require.NoError(t, err)
	require.Empty(t, missing(val.(model.Matrix), acked))
}

// ingesterSamples reads one ingester's copy of the workspace directly over gRPC.
func ingesterSamples(t *testing.T, addr, ws string) map[string][]int64 {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, err := user.InjectIntoGRPCRequest(user.InjectOrgID(context.Background(), ws))
	require.NoError(t, err)
	stream, err := ingesterpb.NewIngesterClient(conn).QueryStream(ctx, &ingesterpb.QueryRequest{
		StartTimestampMs: 0, EndTimestampMs: time.Now().Add(time.Hour).UnixMilli(),
		Matchers: []prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "cluster_test_metric"}},
	})
	require.NoError(t, err)
	out := map[string][]int64{}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		for _, s := range msg.Series {
			var id string
			for _, l := range s.Labels {
				if l.Name == "series" {
					id = l.Value
				}
			}
			for _, c := range s.Chunks {
				chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
				require.NoError(t, err)
				it := chk.Iterator(nil)
				for it.Next() != chunkenc.ValNone {
					out[id] = append(out[id], it.AtT())
				}
				require.NoError(t, it.Err())
			}
		}
	}
	return out
}
