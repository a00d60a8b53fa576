package ruler

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

// twoRulers is a ruler ring of "a" and "b", one of them down if set.
type twoRulers struct {
	ring.ReadRing
	down    string // its heartbeat timed out
	leaving string // heartbeating, LEAVING
	err     error  // the ring cannot be read
}

func (r twoRulers) GetAllHealthy(op ring.Operation) (ring.ReplicationSet, error) {
	if r.err != nil {
		return ring.ReplicationSet{}, r.err
	}
	var rs ring.ReplicationSet
	for _, id := range []string{"a", "b"} {
		if id != r.down && (id != r.leaving || op.IsInstanceInStateHealthy(ring.LEAVING)) {
			rs.Instances = append(rs.Instances, ring.InstanceDesc{Id: id})
		}
	}
	return rs, nil
}

type fakeMember struct {
	services.Service
	id string
}

func (m fakeMember) InstanceID() string { return m.id }

type staticFiles map[string][]RulesFile

func (f staticFiles) RulesFiles(context.Context) (map[string][]RulesFile, error) { return f, nil }

type noOffset struct{}

func (noOffset) RuleQueryOffset(string) time.Duration { return 0 }

func groupNames(rl *Ruler, ws string) []string {
	var out []string
	for _, g := range rl.RuleGroups(ws) {
		out = append(out, g.File()+"/"+g.Name())
	}
	return out
}

// TestEachGroupHasOneRuler: two rulers split a workspace's groups by the
// ring, each group evaluated by exactly one; when one leaves the ring, the
// other takes its groups at its next sync; a changed file is taken up.
func TestEachGroupHasOneRuler(t *testing.T) {
	var data string
	for i := 0; i < 8; i++ {
		data += fmt.Sprintf("  - name: g%d\n    rules:\n      - record: r%d\n        expr: vector(1)\n", i, i)
	}
	files := staticFiles{"ws-1": {{Name: "ns", Data: []byte("groups:\n" + data), Revision: 1}}}
	st := teststorage.New(t)
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute})
	cfg := Config{EvaluationInterval: time.Minute, PollInterval: time.Hour, HandoffWait: -1}
	newRuler := func(id string, r ring.ReadRing) *Ruler {
		rl := New(cfg, files, noOffset{}, engine, st, &fakePusher{}, r, fakeMember{services.NewIdleService(nil, nil), id}, prometheus.NewRegistry(), log.NewNopLogger())
		t.Cleanup(func() { _ = rl.stopping(nil) })
		return rl
	}
	a, b := newRuler("a", twoRulers{}), newRuler("b", twoRulers{})
	ctx := context.Background()
	require.NoError(t, a.Sync(ctx))
	require.NoError(t, b.Sync(ctx))
	ga, gb := groupNames(a, "ws-1"), groupNames(b, "ws-1")
	require.NotEmpty(t, ga)
	require.NotEmpty(t, gb)
	require.Len(t, append(append([]string{}, ga...), gb...), 8, "every group once")
	for _, g := range ga {
		require.NotContains(t, gb, g, "no group on both")
	}

	// b leaves: a takes every group at its next sync.
	a.ring = twoRulers{down: "b"}
	require.NoError(t, a.Sync(ctx))
	require.Len(t, groupNames(a, "ws-1"), 8)

	// A new revision of the file: its groups are what a evaluates.
	files["ws-1"] = []RulesFile{{Name: "ns", Data: []byte("groups:\n  - name: only\n    rules:\n      - record: r\n        expr: vector(1)\n"), Revision: 2}}
	require.NoError(t, a.Sync(ctx))
	require.Equal(t, []string{"ns/only"}, groupNames(a, "ws-1"))

	// The namespace gone: the workspace's manager stops.
	delete(files, "ws-1")
	require.NoError(t, a.Sync(ctx))
	require.Empty(t, groupNames(a, "ws-1"))
}

// TestUsagePerWorkspaceAndGroup: each workspace's evaluations and failures
// are counted by workspace and rule group, and go with the workspace.
func TestUsagePerWorkspaceAndGroup(t *testing.T) {
	files := staticFiles{
		// An alerting rule too: without -ruler.alertmanager-url its alerts
		// go nowhere (and do not crash the process).
		"ws-1": {{Name: "ns", Revision: 1, Data: []byte("groups:\n  - name: ok\n    interval: 1s\n    rules:\n      - record: r\n        expr: vector(1)\n      - alert: A\n        expr: vector(1)\n")}},
		"ws-2": {{Name: "ns", Revision: 1, Data: []byte("groups:\n  - name: bad\n    interval: 1s\n    rules:\n      - record: r\n        expr: label_replace(vector(1), \"x\", \"y\", \"z\", \"(\")\n")}},
	}
	reg := prometheus.NewRegistry()
	rl := New(Config{EvaluationInterval: time.Minute, PollInterval: time.Hour, HandoffWait: -1}, files, noOffset{},
		promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute}), teststorage.New(t), &fakePusher{},
		twoRulers{down: "b"}, fakeMember{services.NewIdleService(nil, nil), "a"}, reg, log.NewNopLogger())
	t.Cleanup(func() { _ = rl.stopping(nil) })
	require.NoError(t, rl.Sync(context.Background()))
	value := func(name, ws, group string) float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.Metric {
				ls := map[string]string{}
				for _, l := range m.Label {
					ls[l.GetName()] = l.GetValue()
				}
				if ls["workspace"] == ws && ls["rule_group"] == group {
					return m.Counter.GetValue()
				}
			}
		}
		return 0
	}
	require.Eventually(t, func() bool {
		return value("vigil_ruler_rule_evaluations_total", "ws-1", "ns;ok") >= 2 &&
			value("vigil_ruler_rule_evaluation_failures_total", "ws-2", "ns;bad") >= 1
	}, 10*time.Second, 50*time.Millisecond)
	require.Zero(t, value("vigil_ruler_rule_evaluation_failures_total", "ws-1", "ns;ok"))

	delete(files, "ws-2")
	require.NoError(t, rl.Sync(context.Background()))
	require.Zero(t, value("vigil_ruler_rule_evaluations_total", "ws-2", "ns;bad"), "a workspace's series go with it")
}

// TestTakenGroupsWaitForTheirLastRuler: a group a ruler was not evaluating
// starts only -ruler.handoff-wait after the ruler found it owns it, so that
// the ruler it comes from has stopped it (at its start, and from a ruler
// still heartbeating); at once when that ruler is gone (its heartbeat timed
// out, or it left the ring). A group it evaluates keeps going through a new
// revision of its file, and one handed away stops at once.
func TestTakenGroupsWaitForTheirLastRuler(t *testing.T) {
	var data string
	for i := 0; i < 8; i++ {
		data += fmt.Sprintf("  - name: g%d\n    rules:\n      - record: r%d\n        expr: vector(1)\n", i, i)
	}
	files := staticFiles{"ws-1": {{Name: "ns", Data: []byte("groups:\n" + data), Revision: 1}}}
	cfg := Config{EvaluationInterval: time.Minute, PollInterval: time.Hour, HandoffWait: 5 * time.Second}
	rl := New(cfg, files, noOffset{}, promql.NewEngine(promql.EngineOpts{}), teststorage.New(t), &fakePusher{},
		twoRulers{down: "b"}, fakeMember{services.NewIdleService(nil, nil), "a"}, prometheus.NewRegistry(), log.NewNopLogger())
	t.Cleanup(func() { _ = rl.stopping(nil) })
	clock := time.Unix(1_000_000, 0)
	rl.now = func() time.Time { return clock }
	ctx := context.Background()

	require.NoError(t, rl.Sync(ctx))
	require.Empty(t, groupNames(rl, "ws-1"), "nothing starts at once")
	clock = clock.Add(4 * time.Second)
	require.NoError(t, rl.Sync(ctx))
	require.Empty(t, groupNames(rl, "ws-1"))
	clock = clock.Add(time.Second)
	require.NoError(t, rl.Sync(ctx))
	require.Len(t, groupNames(rl, "ws-1"), 8, "every group once the wait is over")

	files["ws-1"][0].Revision = 2
	require.NoError(t, rl.Sync(ctx))
	require.Len(t, groupNames(rl, "ws-1"), 8, "a new revision does not wait")

	// b comes back: a stops b's groups at once. b leaves, still
	// heartbeating: a waits again for the groups that come back to it.
	rl.ring = twoRulers{}
	require.NoError(t, rl.Sync(ctx))
	mine := groupNames(rl, "ws-1")
	require.NotEmpty(t, mine)
	require.Less(t, len(mine), 8)
	rl.ring = twoRulers{leaving: "b"}
	require.NoError(t, rl.Sync(ctx))
	require.Equal(t, mine, groupNames(rl, "ws-1"), "b may still evaluate them")
	clock = clock.Add(5 * time.Second)
	require.NoError(t, rl.Sync(ctx))
	require.Len(t, groupNames(rl, "ws-1"), 8)

	// b is back, then dies: a takes its groups at once, nothing to wait for.
	rl.ring = twoRulers{}
	require.NoError(t, rl.Sync(ctx))
	require.Equal(t, mine, groupNames(rl, "ws-1"))
	rl.ring = twoRulers{down: "b"}
	require.NoError(t, rl.Sync(ctx))
	require.Len(t, groupNames(rl, "ws-1"), 8, "a dead ruler's groups move at the first poll that sees it dead")

	// After a ring that could not be read, where the groups were is not
	// known: they wait, even those of a ruler now gone.
	rl.ring = twoRulers{}
	require.NoError(t, rl.Sync(ctx))
	rl.ring = twoRulers{err: errors.New("gossip lost")}
	require.Error(t, rl.Sync(ctx))
	require.Empty(t, groupNames(rl, "ws-1"), "an unreadable ring stops every group")
	rl.ring = twoRulers{down: "b"}
	require.NoError(t, rl.Sync(ctx))
	require.Empty(t, groupNames(rl, "ws-1"), "nothing starts at once")
	clock = clock.Add(5 * time.Second)
	require.NoError(t, rl.Sync(ctx))
	require.Len(t, groupNames(rl, "ws-1"), 8)

	// A last ring read older than the wait tells nothing either.
	rl.ring = twoRulers{}
	require.NoError(t, rl.Sync(ctx))
	clock = clock.Add(time.Minute)
	rl.ring = twoRulers{down: "b"}
	require.NoError(t, rl.Sync(ctx))
	require.Less(t, len(groupNames(rl, "ws-1")), 8, "b's groups wait")
}

// TestGroupsSpreadEvenly: groups spread evenly over rulers named alike,
// and a ruler's groups, when it goes, spread over all the others.
func TestGroupsSpreadEvenly(t *testing.T) {
	const groups = 3000
	all := owners{ids: []string{"ruler-0", "ruler-1", "ruler-2"}}
	without := owners{ids: []string{"ruler-0", "ruler-2"}}
	share := map[string]int{}
	moved := map[string]int{}
	for i := 0; i < groups; i++ {
		g := fmt.Sprint("g", i)
		was := all.of("ws-1", "ns", g)
		share[was]++
		if was == "ruler-1" {
			moved[without.of("ws-1", "ns", g)]++
		}
	}
	for _, id := range all.ids {
		require.InDelta(t, groups/3, share[id], groups/10, "%s's share: %v", id, share)
	}
	for _, id := range without.ids {
		require.InDelta(t, share["ruler-1"]/2, moved[id], float64(share["ruler-1"])/5, "ruler-1's groups go to both others: %v", moved)
	}
}

// failingFiles is a store whose reads fail while failing is set.
type failingFiles struct {
	staticFiles
	failing *bool
}

func (f failingFiles) RulesFiles(ctx context.Context) (map[string][]RulesFile, error) {
	if *f.failing {
		return nil, errors.New("object storage unavailable")
	}
	return f.staticFiles.RulesFiles(ctx)
}

// TestAFailedSyncStillReleasesGroups: a ruler that cannot read the
// namespaces still stops the groups the ring hands to another ruler (and
// keeps its own, as read last); one that cannot read the ring evaluates
// nothing, since another may own everything.
func TestAFailedSyncStillReleasesGroups(t *testing.T) {
	var data string
	for i := 0; i < 8; i++ {
		data += fmt.Sprintf("  - name: g%d\n    rules:\n      - record: r%d\n        expr: vector(1)\n", i, i)
	}
	failing := false
	files := failingFiles{staticFiles{"ws-1": {{Name: "ns", Data: []byte("groups:\n" + data), Revision: 1}}}, &failing}
	rl := New(Config{EvaluationInterval: time.Minute, PollInterval: time.Hour, HandoffWait: -1}, files, noOffset{},
		promql.NewEngine(promql.EngineOpts{}), teststorage.New(t), &fakePusher{},
		twoRulers{down: "b"}, fakeMember{services.NewIdleService(nil, nil), "a"}, prometheus.NewRegistry(), log.NewNopLogger())
	t.Cleanup(func() { _ = rl.stopping(nil) })
	ctx := context.Background()
	require.NoError(t, rl.Sync(ctx))
	require.Len(t, groupNames(rl, "ws-1"), 8)

	failing = true
	rl.ring = twoRulers{}
	require.Error(t, rl.Sync(ctx))
	mine := groupNames(rl, "ws-1")
	require.NotEmpty(t, mine, "its own groups keep going from the files read last")
	require.Less(t, len(mine), 8, "b's groups stop although the files could not be read")

	rl.ring = twoRulers{err: errors.New("ring unreadable")}
	require.Error(t, rl.Sync(ctx))
	require.Empty(t, groupNames(rl, "ws-1"), "without the ring, nothing is this ruler's")
}
