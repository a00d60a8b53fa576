package distributor

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/codec"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

type haTestLimits struct{ maxClusters int }

func (haTestLimits) AcceptHASamples(string) bool  { return true }
func (haTestLimits) HAClusterLabel(string) string { return "cluster" }
func (haTestLimits) HAReplicaLabel(string) string { return "__replica__" }
func (l haTestLimits) HAMaxClusters(string) int   { return l.maxClusters }

// haStart is the test clock's origin.
var haStart = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func testHAConfig() HATrackerConfig {
	return HATrackerConfig{Enable: true, UpdateTimeout: 15 * time.Second, FailoverTimeout: 30 * time.Second}
}

func newHAStore(t testing.TB) kv.Client {
	c, closer := consul.NewInMemoryClient(HATrackerCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { require.NoError(t, closer.Close()) })
	return c
}

func newTestHATracker(t testing.TB, client kv.Client, limits HALimits, reg prometheus.Registerer) *HATracker {
	tr, err := NewHATracker(testHAConfig(), client, limits, reg, log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), tr))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), tr)) })
	return tr
}

// elected is the replica a tracker's cache holds elected, "" for none.
func (t *HATracker) elected(workspace, cluster string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.clusters[workspace][cluster]; e != nil && e.desc.live() {
		return e.desc.Replica
	}
	return ""
}

// haStep is one push of a replica of cluster "c" to distributor tracker.
type haStep struct {
	tracker int
	at      time.Duration // since haStart
	replica string
	stored  bool // else not elected
}

func runHASteps(t *testing.T, trackers []*HATracker, steps []haStep) {
	t.Helper()
	for i, s := range steps {
		err := trackers[s.tracker].CheckReplica(context.Background(), "ws-1", "c", s.replica, haStart.Add(s.at))
		if s.stored {
			require.NoError(t, err, "step %d", i)
		} else {
			require.True(t, IsNotElected(err), "step %d: %v", i, err)
		}
	}
}

func TestHATrackerFailover(t *testing.T) {
	for _, tc := range []struct {
		name      string
		steps     []haStep
		elected   string
		changes   int
		kvWrites  map[string]int
		timestamp time.Duration // of the elected replica, as written
	}{
		{
			name:     "the first replica is elected and stays while it sends",
			steps:    []haStep{{0, 0, "A", true}, {0, time.Second, "B", false}, {0, 10 * time.Second, "A", true}, {0, 14 * time.Second, "A", true}, {0, 44 * time.Second, "B", false}},
			elected:  "A",
			kvWrites: map[string]int{"elect": 1},
		},
		{
			name: "the elected replica is reported every update timeout, not at every push",
			steps: []haStep{{0, 0, "A", true}, {0, 5 * time.Second, "A", true}, {0, 16 * time.Second, "A", true}, {0, 20 * time.Second, "A", true},
				{0, 32 * time.Second, "A", true}},
			elected:   "A",
			kvWrites:  map[string]int{"elect": 1, "refresh": 2},
			timestamp: 32 * time.Second,
		},
		{
			name: "a replica silent for the failover timeout is replaced",
			steps: []haStep{{0, 0, "A", true}, {0, 10 * time.Second, "A", true}, {0, 40 * time.Second, "B", false},
				{0, 40*time.Second + time.Millisecond, "B", true}, {0, 41 * time.Second, "A", false}, {0, 42 * time.Second, "B", true}},
			elected:   "B",
			changes:   1,
			kvWrites:  map[string]int{"elect": 2},
			timestamp: 40*time.Second + time.Millisecond,
		},
		{
			name: "two distributors on one store agree, and both see the failover",
			steps: []haStep{{0, 0, "A", true}, {1, time.Second, "B", false}, {1, 2 * time.Second, "A", true}, {0, 10 * time.Second, "A", true},
				// The second distributor heard A at 2 s, the first at 10 s.
				{1, 32 * time.Second, "B", false}, {1, 40*time.Second + time.Millisecond, "B", true}, {0, 41 * time.Second, "A", false}, {0, 42 * time.Second, "B", true}},
			elected:   "B",
			changes:   1,
			kvWrites:  map[string]int{"elect": 2},
			timestamp: 40*time.Second + time.Millisecond,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newHAStore(t)
			regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
			trackers := []*HATracker{newTestHATracker(t, store, haTestLimits{}, regs[0]), newTestHATracker(t, store, haTestLimits{}, regs[1])}
			runHASteps(t, trackers, tc.steps)

			used := map[int]bool{}
			for _, s := range tc.steps {
				used[s.tracker] = true
			}
			writes := map[string]int{}
			for i, tr := range trackers {
				poll(t, 5*time.Second, tc.elected, func() any { return tr.elected("ws-1", "c") })
				for _, op := range []string{"elect", "refresh", "mark_deleted"} {
					writes[op] += int(testutil.ToFloat64(tr.metrics.kvWrites.WithLabelValues(op)))
				}
				// A distributor that took part saw every election; one
				// that only watches may have missed the first.
				if used[i] {
					require.Equal(t, tc.changes, testutil.CollectAndCount(regs[i], "vigil_distributor_ha_tracker_elected_replica_changes_total"))
					if tc.changes > 0 {
						require.Equal(t, float64(tc.changes), testutil.ToFloat64(tr.metrics.electedChanges.WithLabelValues("ws-1", "c")))
					}
				}
				poll(t, 5*time.Second, haStart.Add(tc.timestamp).Unix(), func() any {
					return int64(testutil.ToFloat64(tr.metrics.electedTimestamp.WithLabelValues("ws-1", "c")))
				})
			}
			for op, n := range tc.kvWrites {
				require.Equal(t, n, writes[op], op)
			}
			require.Equal(t, 0, writes["mark_deleted"])
		})
	}
}

func TestHATrackerIgnores(t *testing.T) {
	store := newHAStore(t)
	tr := newTestHATracker(t, store, haTestLimits{maxClusters: 1}, prometheus.NewRegistry())
	ctx := context.Background()
	require.NoError(t, tr.CheckReplica(ctx, "ws-1", "c", "A", haStart))
	// Samples without cluster or replica are not HA samples.
	require.NoError(t, tr.CheckReplica(ctx, "ws-1", "", "B", haStart))
	require.NoError(t, tr.CheckReplica(ctx, "ws-1", "c", "", haStart))

	// A disabled tracker stores every sample.
	cfg := testHAConfig()
	cfg.Enable = false
	off, err := NewHATracker(cfg, store, haTestLimits{maxClusters: 1}, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, off.CheckReplica(ctx, "ws-1", "c", "B", haStart))
	require.NoError(t, off.CheckReplica(ctx, "ws-1", "other", "B", haStart))
}

func TestHATrackerMaxClusters(t *testing.T) {
	store := newHAStore(t)
	tr := newTestHATracker(t, store, haTestLimits{maxClusters: 2}, prometheus.NewRegistry())
	ctx := context.Background()
	check := func(workspace, cluster, replica string, at time.Duration) error {
		return tr.CheckReplica(ctx, workspace, cluster, replica, haStart.Add(at))
	}
	requireTooMany := func(err error) {
		t.Helper()
		require.Error(t, err)
		e := apierror.From(err)
		require.Equal(t, apierror.IDTooManyHAClusters, e.ID)
		require.Equal(t, 400, apierror.HTTPStatus(e.Cause))
		require.Contains(t, err.Error(), "too many HA clusters (limit: 2)")
	}

	require.NoError(t, check("ws-1", "c1", "A", 0))
	require.NoError(t, check("ws-1", "c2", "A", 0))
	requireTooMany(check("ws-1", "c3", "A", time.Second))
	// Clusters already tracked pass, elected or not; other workspaces count apart.
	require.NoError(t, check("ws-1", "c1", "A", 2*time.Second))
	require.True(t, IsNotElected(check("ws-1", "c2", "B", 2*time.Second)))
	require.NoError(t, check("ws-2", "c3", "A", 2*time.Second))

	// c2 (and ws-2's c3) fall silent; c1 keeps sending. The cleanup marks
	// c2 deleted, which frees its place.
	require.NoError(t, check("ws-1", "c1", "A", 29*time.Minute))
	tr.cleanup(ctx, haStart.Add(31*time.Minute))
	require.Equal(t, "", tr.elected("ws-1", "c2"))
	require.Equal(t, "A", tr.elected("ws-1", "c1"))
	require.Equal(t, 2.0, testutil.ToFloat64(tr.metrics.kvWrites.WithLabelValues("mark_deleted")))
	require.NoError(t, check("ws-1", "c3", "A", 31*time.Minute))
	requireTooMany(check("ws-1", "c4", "A", 31*time.Minute))

	// Half an hour after the mark, the key goes; c2 coming back is a new
	// cluster and elects whichever replica sends first.
	tr.cleanup(ctx, haStart.Add(62*time.Minute))
	v, err := store.Get(ctx, haKey("ws-1", "c2"))
	require.NoError(t, err)
	require.Nil(t, v)
	require.Equal(t, "", tr.elected("ws-1", "c1"), "silent since 29 min")
	require.NoError(t, check("ws-1", "c2", "B", 63*time.Minute))
	require.Equal(t, "B", tr.elected("ws-1", "c2"))
}

func TestHATrackerForgetWorkspace(t *testing.T) {
	store := newHAStore(t)
	reg := prometheus.NewRegistry()
	tr := newTestHATracker(t, store, haTestLimits{}, reg)
	ctx := context.Background()
	require.NoError(t, tr.CheckReplica(ctx, "ws-1", "c", "A", haStart))
	require.NoError(t, tr.CheckReplica(ctx, "ws-2", "c", "A", haStart))
	require.NoError(t, tr.CheckReplica(ctx, "ws-2", "c", "B", haStart.Add(time.Minute)))
	require.Equal(t, 2, testutil.CollectAndCount(reg, "vigil_distributor_ha_tracker_elected_replica_timestamp_seconds"))
	require.Equal(t, 1, testutil.CollectAndCount(reg, "vigil_distributor_ha_tracker_elected_replica_changes_total"))
	tr.CountDeduplicated("ws-1", "c", 3)
	tr.CountDeduplicated("ws-2", "c", 5)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_distributor_ha_tracker_deduplicated_samples_total Samples of replicas that are not elected, acknowledged and dropped, by workspace and cluster.
# TYPE vigil_distributor_ha_tracker_deduplicated_samples_total counter
vigil_distributor_ha_tracker_deduplicated_samples_total{cluster="c",workspace="ws-1"} 3
vigil_distributor_ha_tracker_deduplicated_samples_total{cluster="c",workspace="ws-2"} 5
`), "vigil_distributor_ha_tracker_deduplicated_samples_total"))

	tr.ForgetWorkspace("ws-2")
	require.Equal(t, 1, testutil.CollectAndCount(reg, "vigil_distributor_ha_tracker_deduplicated_samples_total"))
	require.Equal(t, "", tr.elected("ws-2", "c"))
	require.Equal(t, "A", tr.elected("ws-1", "c"))
	require.Equal(t, 1, testutil.CollectAndCount(reg, "vigil_distributor_ha_tracker_elected_replica_timestamp_seconds"))
	require.Equal(t, 0, testutil.CollectAndCount(reg, "vigil_distributor_ha_tracker_elected_replica_changes_total"))

	// Its keys go with the cleanup, as those of any silent cluster.
	tr.cleanup(ctx, haStart.Add(time.Hour))
	tr.cleanup(ctx, haStart.Add(2*time.Hour))
	for _, ws := range []string{"ws-1", "ws-2"} {
		v, err := store.Get(ctx, haKey(ws, "c"))
		require.NoError(t, err)
		require.Nil(t, v, ws)
	}
	poll(t, 5*time.Second, 0, func() any {
		return testutil.CollectAndCount(reg, "vigil_distributor_ha_tracker_elected_replica_timestamp_seconds")
	})
	require.Equal(t, 0, testutil.CollectAndCount(reg, "vigil_distributor_ha_tracker_deduplicated_samples_total"))
}

func TestHATrackerRestartReadsTheStore(t *testing.T) {
	store := newHAStore(t)
	first := newTestHATracker(t, store, haTestLimits{maxClusters: 1}, prometheus.NewRegistry())
	require.NoError(t, first.CheckReplica(context.Background(), "ws-1", "c", "A", haStart))

	second := newTestHATracker(t, store, haTestLimits{maxClusters: 1}, prometheus.NewRegistry())
	require.Equal(t, "A", second.elected("ws-1", "c"))
	require.Error(t, second.CheckReplica(context.Background(), "ws-1", "other", "A", haStart))
}

func TestReplicaDescMerge(t *testing.T) {
	const ms = int64(1_000_000)
	for _, tc := range []struct {
		name string
		in   []replicaDesc
		want replicaDesc
	}{
		{
			name: "concurrent elections the same millisecond: the last name wins",
			in:   []replicaDesc{{Replica: "A", ElectedAt: ms, ReceivedAt: ms}, {Replica: "B", ElectedAt: ms, ReceivedAt: ms}},
			want: replicaDesc{Replica: "B", ElectedAt: ms, ReceivedAt: ms},
		},
		{
			name: "the later election wins over later reports of the one it replaced",
			in:   []replicaDesc{{Replica: "B", ElectedAt: ms, ReceivedAt: ms + 90}, {Replica: "A", ElectedAt: ms + 5, ReceivedAt: ms + 5}, {Replica: "B", ElectedAt: ms, ReceivedAt: ms + 99}},
			want: replicaDesc{Replica: "A", ElectedAt: ms + 5, ReceivedAt: ms + 5},
		},
		{
			name: "reports of one election keep the latest",
			in:   []replicaDesc{{Replica: "A", ElectedAt: ms, ReceivedAt: ms + 20}, {Replica: "A", ElectedAt: ms, ReceivedAt: ms + 10}, {Replica: "A", ElectedAt: ms, ReceivedAt: ms}},
			want: replicaDesc{Replica: "A", ElectedAt: ms, ReceivedAt: ms + 20},
		},
		{
			name: "a deletion mark after the last report deletes",
			in:   []replicaDesc{{Replica: "A", ElectedAt: ms, ReceivedAt: ms + 10}, {Replica: "A", ElectedAt: ms, ReceivedAt: ms + 5, DeletedAt: ms + 50}},
			want: replicaDesc{Replica: "A", ElectedAt: ms, ReceivedAt: ms + 10, DeletedAt: ms + 50},
		},
		{
			name: "a report after the mark keeps the cluster",
			in:   []replicaDesc{{Replica: "A", ElectedAt: ms, ReceivedAt: ms + 60}, {Replica: "A", ElectedAt: ms, ReceivedAt: ms + 5, DeletedAt: ms + 50}},
			want: replicaDesc{Replica: "A", ElectedAt: ms, ReceivedAt: ms + 60, DeletedAt: ms + 50},
		},
		{
			name: "an election after the mark revives the cluster",
			in:   []replicaDesc{{Replica: "A", ElectedAt: ms, ReceivedAt: ms + 5, DeletedAt: ms + 50}, {Replica: "B", ElectedAt: ms + 51, ReceivedAt: ms + 51}, {}},
			want: replicaDesc{Replica: "B", ElectedAt: ms + 51, ReceivedAt: ms + 51, DeletedAt: ms + 50},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Every order of merges ends in the same state.
			for _, order := range permutations(len(tc.in)) {
				state := tc.in[order[0]].Clone().(*replicaDesc)
				for _, i := range order[1:] {
					_, err := state.Merge(tc.in[i].Clone(), false)
					require.NoError(t, err)
				}
				require.Equal(t, tc.want, *state, "order %v", order)

				// Merging any input again changes nothing.
				for _, in := range tc.in {
					change, err := state.Merge(in.Clone(), true)
					require.NoError(t, err)
					require.Nil(t, change)
				}
			}
			wantLive := tc.want.DeletedAt <= tc.want.ReceivedAt
			require.Equal(t, wantLive, tc.want.live())
			total, removed := tc.want.Clone().RemoveTombstones(time.Time{})
			require.Equal(t, 0, removed, "the mark stays visible to the trackers")
			require.Equal(t, !wantLive, total == 1)
		})
	}
}

func TestReplicaDescMergeChange(t *testing.T) {
	d := &replicaDesc{Replica: "A", ElectedAt: 1, ReceivedAt: 1}
	change, err := d.Merge(&replicaDesc{Replica: "A", ElectedAt: 1, ReceivedAt: 7}, false)
	require.NoError(t, err)
	require.Equal(t, &replicaDesc{Replica: "A", ElectedAt: 1, ReceivedAt: 7}, change)
	require.Equal(t, []string{"A"}, change.MergeContent())
	change.(*replicaDesc).ReceivedAt = 99
	require.Equal(t, int64(7), d.ReceivedAt, "the change is a copy")

	change, err = d.Merge(nil, false)
	require.NoError(t, err)
	require.Nil(t, change)
	_, err = d.Merge(otherMergeable{}, false)
	require.Error(t, err)
}

type otherMergeable struct{ memberlist.Mergeable }

func TestHATrackerCodec(t *testing.T) {
	c := HATrackerCodec()
	require.Equal(t, "vigil-ha-tracker", c.CodecID())
	in := &replicaDesc{Replica: "prom-0", ElectedAt: 10, ReceivedAt: 20, DeletedAt: 5}
	b, err := c.Encode(in)
	require.NoError(t, err)
	out, err := c.Decode(b)
	require.NoError(t, err)
	require.Equal(t, in, out)

	for _, empty := range [][]byte{nil, {0}} {
		out, err = c.Decode(empty)
		require.NoError(t, err)
		require.Equal(t, &replicaDesc{}, out)
	}
	_, err = c.Decode([]byte("{"))
	require.Error(t, err)
	_, err = c.Encode("x")
	require.Error(t, err)
}

func TestHATrackerConfigValidate(t *testing.T) {
	var def HATrackerConfig
	flagext.DefaultValues(&def)
	require.Equal(t, HATrackerConfig{Enable: true, UpdateTimeout: 15 * time.Second, UpdateTimeoutJitterMax: 5 * time.Second, FailoverTimeout: 30 * time.Second}, def)

	for _, tc := range []struct {
		name   string
		modify func(*HATrackerConfig)
		err    string
	}{
		{name: "defaults", modify: func(*HATrackerConfig) {}},
		{name: "no update timeout", modify: func(c *HATrackerConfig) { c.UpdateTimeout = 0 }, err: "update-timeout must be positive"},
		{name: "negative jitter", modify: func(c *HATrackerConfig) { c.UpdateTimeoutJitterMax = -time.Second }, err: "jitter-max must not be negative"},
		{name: "failover equal to update timeout and jitter", modify: func(c *HATrackerConfig) { c.FailoverTimeout = 20 * time.Second }, err: "failover-timeout (20s) must be greater"},
		{name: "failover after the update timeout and jitter", modify: func(c *HATrackerConfig) { c.FailoverTimeout = 21 * time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := def
			tc.modify(&cfg)
			err := cfg.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
			_, err = NewHATracker(cfg, nil, haTestLimits{}, prometheus.NewRegistry(), log.NewNopLogger())
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestHALabels(t *testing.T) {
	for _, tc := range []struct {
		labels           []string
		cluster, replica string
	}{
		{[]string{"__name__", "up", "__replica__", "r1", "cluster", "eu"}, "eu", "r1"},
		{[]string{"__name__", "up", "cluster", "eu"}, "eu", ""},
		{[]string{"__name__", "up", "__replica__", "r1"}, "", "r1"},
		{[]string{"__name__", "up"}, "", ""},
	} {
		cluster, replica := haLabels(lbls(tc.labels...), "cluster", "__replica__")
		require.Equal(t, tc.cluster, cluster, tc.labels)
		require.Equal(t, tc.replica, replica, tc.labels)
	}
}

// TestHATrackerMemberlist runs two distributors on two memberlist stores
// on loopback. They elect different replicas while apart, and agree on one
// once joined.
func TestHATrackerMemberlist(t *testing.T) {
	ctx := context.Background()
	stores := make([]*memberlist.KV, 2)
	trackers := make([]*HATracker, 2)
	for i := range stores {
		var cfg memberlist.KVConfig
		flagext.DefaultValues(&cfg)
		cfg.NodeName = "distributor-" + strconv.Itoa(i)
		cfg.TCPTransport.BindAddrs = []string{"127.0.0.1"}
		cfg.TCPTransport.BindPort = 0
		cfg.GossipInterval = 50 * time.Millisecond
		cfg.LeaveTimeout = time.Second
		cfg.BroadcastTimeoutForLocalUpdatesOnShutdown = time.Second
		cfg.Codecs = []codec.Codec{HATrackerCodec()}
		stores[i] = memberlist.NewKV(cfg, log.NewNopLogger(), noDNS{}, prometheus.NewRegistry())
		require.NoError(t, services.StartAndAwaitRunning(ctx, stores[i]))
		t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(ctx, stores[i])) })
		client, err := memberlist.NewClient(stores[i], HATrackerCodec())
		require.NoError(t, err)
		trackers[i] = newTestHATracker(t, client, haTestLimits{}, prometheus.NewRegistry())
	}

	// Apart, each elects the replica that reached it, the same millisecond.
	require.NoError(t, trackers[0].CheckReplica(ctx, "ws-1", "c", "A", haStart))
	require.NoError(t, trackers[1].CheckReplica(ctx, "ws-1", "c", "B", haStart))

	_, err := stores[1].JoinMembers([]string{net.JoinHostPort("127.0.0.1", strconv.Itoa(stores[0].GetListeningPort()))})
	require.NoError(t, err)
	for _, tr := range trackers {
		poll(t, 10*time.Second, "B", func() any { return tr.elected("ws-1", "c") })
	}
	for _, tr := range trackers {
		require.True(t, IsNotElected(tr.CheckReplica(ctx, "ws-1", "c", "A", haStart.Add(time.Second))))
		require.NoError(t, tr.CheckReplica(ctx, "ws-1", "c", "B", haStart.Add(time.Second)))
	}

	// A failover through one store reaches the other.
	require.NoError(t, trackers[0].CheckReplica(ctx, "ws-1", "c", "A", haStart.Add(32*time.Second)))
	poll(t, 10*time.Second, "A", func() any { return trackers[1].elected("ws-1", "c") })
	require.True(t, IsNotElected(trackers[1].CheckReplica(ctx, "ws-1", "c", "B", haStart.Add(33*time.Second))))
}

// poll waits until have returns want, as dskit's test.Poll does (whose
// package needs a module this one does not).
func poll(t *testing.T, d time.Duration, want any, have func() any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := have()
		if reflect.DeepEqual(want, got) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %v, have %v", want, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type noDNS struct{}

func (noDNS) Resolve(context.Context, []string) error { return nil }
func (noDNS) Addresses() []string                     { return nil }

// permutations returns every order of 0..n-1.
func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

func TestHATrackerStatusPage(t *testing.T) {
	tr := newTestHATracker(t, newHAStore(t), haTestLimits{maxClusters: 10}, prometheus.NewRegistry())
	require.NoError(t, tr.CheckReplica(context.Background(), "ws-1", "prod", "a", haStart))
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/distributor/ha-tracker", nil))
	require.JSONEq(t, `{"clusters":[{"workspace":"ws-1","cluster":"prod","elected_replica":"a",
		"elected_at":"2026-05-01T12:00:00Z","last_heard":"2026-05-01T12:00:00Z","failover_after":"2026-05-01T12:00:30Z"}]}`, rec.Body.String())
}

// TestHATrackerCopiesNames: the cluster and replica names of a request
// alias its buffers, which the decoder reuses for the next request: the
// tracker keeps copies. Before the fix the status page showed the bytes of
// later requests as cluster and replica names.
func TestHATrackerCopiesNames(t *testing.T) {
	tr := newTestHATracker(t, newHAStore(t), haTestLimits{maxClusters: 10}, prometheus.NewRegistry())
	buf := []byte("prodb")
	cluster, replica := unsafe.String(&buf[0], 4), unsafe.String(&buf[4], 1)
	require.NoError(t, tr.CheckReplica(context.Background(), "ws-1", cluster, replica, haStart))
	tr.CountDeduplicated("ws-1", cluster, 1)
	copy(buf, "XXXXX") // the next request decoded into the same buffer
	require.Equal(t, "b", tr.elected("ws-1", "prod"))
	require.NoError(t, tr.CheckReplica(context.Background(), "ws-1", "prod", "b", haStart.Add(time.Second)))
	require.Equal(t, 1.0, testutil.ToFloat64(tr.metrics.deduplicated.WithLabelValues("ws-1", "prod")))
}
