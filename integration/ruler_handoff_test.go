//go:build e2e

package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// rulerMetric reads a ruler's values of a metric of the workspace, by
// rule group (AMP's RuleEvaluations: vigil_ruler_rule_evaluations_total).
func rulerEvaluations(t *testing.T, p *process, ws string) map[string]int {
	t.Helper()
	out := map[string]int{}
	re := regexp.MustCompile(`vigil_ruler_rule_evaluations_total\{rule_group="handoff;(g\d+)",workspace="` + regexp.QuoteMeta(ws) + `"\} (\d+)`)
	for _, m := range re.FindAllStringSubmatch(metricsOf(t, p), -1) {
		n, _ := strconv.Atoi(m[2])
		out[m[1]] = n
	}
	return out
}

// rulerGroups reads how many groups a ruler evaluates.
func rulerGroups(t *testing.T, p *process) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^vigil_ruler_groups (\d+)`).FindStringSubmatch(metricsOf(t, p))
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func metricsOf(t *testing.T, p *process) string {
	t.Helper()
	resp, err := http.Get(p.admin() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// TestClusterRulerHandoff: two ruler processes split a workspace's groups.
// One is killed with SIGKILL: the other takes its groups within one
// evaluation interval. The killed one comes back and takes its groups back
// from the live other. The two rulers run with query offsets 1 s apart, so
// that the timestamps of a group's samples tell which ruler evaluated it:
// two rulers evaluating one group at once would leave samples 1 s apart.
// Every gap between a group's evaluations is over half an interval (no
// group evaluated twice) and at most two intervals (none stopped); while the
// first ruler ran, every evaluation it and the other counted wrote one
// sample.
func TestClusterRulerHandoff(t *testing.T) {
	const (
		interval = 10 * time.Second
		groups   = 8
	)
	c := startCluster(t, "-ruler.min-evaluation-interval=1s")
	var rulers []*process
	for i, id := range []string{"ruler-1", "ruler-2"} {
		p := newProcess(t, id, append(c.common(id),
			"-target=ruler",
			"-ruler.ring.instance-id="+id, "-ruler.ring.instance-addr=127.0.0.1",
			"-ruler.ring.heartbeat-period=500ms", "-ruler.ring.heartbeat-timeout=3s",
			"-ruler.poll-interval=1s", "-ruler.handoff-wait=2s",
			fmt.Sprintf("-ruler.query-offset=%ds", i))...)
		p.join = func() string { return gossipOf(append(c.all(), rulers...)...) }
		p.start()
		waitReady(t, p.base())
		rulers = append(rulers, p)
	}
	for _, p := range rulers {
		require.Eventually(t, func() bool {
			resp, err := http.Get(p.admin() + "/ruler/ring")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return countOccurrences(string(b), "ACTIVE") >= 2
		}, 30*time.Second, 200*time.Millisecond, "both rulers in the ring")
	}
	ws := createWorkspace(t, c.dist.base(), "handoff")
	rules := "groups:\n"
	for i := 0; i < groups; i++ {
		rules += fmt.Sprintf("  - name: g%d\n    interval: %s\n    rules:\n      - record: handoff:g%d\n        expr: vector(%d)\n", i, model.Duration(interval), i, i)
	}
	createNamespace(t, c.dist.base(), ws, "handoff", rules)

	// Both rulers evaluate groups of their own.
	require.Eventually(t, func() bool {
		return rulerGroups(t, rulers[0]) > 0 && rulerGroups(t, rulers[1]) > 0 && rulerGroups(t, rulers[0])+rulerGroups(t, rulers[1]) == groups
	}, 60*time.Second, 500*time.Millisecond, "the rulers split the groups")
	time.Sleep(3 * interval)

	api := promClient(t, "http://"+c.quer.addr("http")+"/workspaces/"+ws)
	ctx := context.Background()
	samples := func(group string) []int64 {
		t.Helper()
		val, _, _, err := api.Query(ctx, "handoff:"+group+"[30m]", time.Now())
		require.NoError(t, err)
		var ts []int64
		for _, s := range val.(model.Matrix) {
			for _, p := range s.Values {
				ts = append(ts, int64(p.Timestamp))
			}
		}
		slices.Sort(ts)
		return ts
	}
	// A sample's timestamp is its evaluation's less the ruler's query
	// offset (0 s or 1 s): between two samples written by the two rulers,
	// the gap between evaluations is the gap between samples give or take
	// the 1 s between the offsets.
	const offsets = time.Second
	onGrid := func(g string, ts []int64) {
		t.Helper()
		require.NotEmpty(t, ts, g)
		for j := 1; j < len(ts); j++ {
			gap := time.Duration(ts[j]-ts[j-1]) * time.Millisecond
			require.Greater(t, gap, interval/2, "group %s: evaluated twice, %s apart", g, gap)
			require.LessOrEqual(t, gap, 2*interval+offsets, "group %s: a gap of %s", g, gap)
		}
	}

	// Kill the ruler with more groups, its counts read just before.
	victim, survivor := rulers[0], rulers[1]
	if rulerGroups(t, rulers[1]) > rulerGroups(t, rulers[0]) {
		victim, survivor = rulers[1], rulers[0]
	}
	before := rulerEvaluations(t, victim, ws)
	victim.kill()
	killed := time.Now()

	// The survivor takes every group within one interval.
	require.Eventually(t, func() bool { return rulerGroups(t, survivor) == groups }, interval, 100*time.Millisecond,
		"the survivor evaluates every group within one interval of the kill")
	t.Logf("the survivor took the killed ruler's groups %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	time.Sleep(3 * interval)

	// Every evaluation counted wrote one sample: the survivor's counts
	// read before the samples, the samples, its counts again.
	afterLow := rulerEvaluations(t, survivor, ws)
	var stored map[string][]int64 = map[string][]int64{}
	for i := 0; i < groups; i++ {
		g := fmt.Sprintf("g%d", i)
		stored[g] = samples(g)
	}
	afterHigh := rulerEvaluations(t, survivor, ws)
	for g, ts := range stored {
		require.GreaterOrEqual(t, len(ts), before[g]+afterLow[g], "group %s: fewer samples than evaluations", g)
		require.LessOrEqual(t, len(ts), before[g]+afterHigh[g]+1, "group %s: samples no ruler counted", g)
		onGrid(g, ts)
	}

	// The victim comes back and takes its groups back from the live
	// survivor.
	victim.start()
	require.Eventually(t, func() bool { return rulerGroups(t, victim) > 0 }, 30*time.Second, 200*time.Millisecond)
	time.Sleep(3 * interval)
	require.Equal(t, groups, rulerGroups(t, victim)+rulerGroups(t, survivor), "each group on one ruler")
	for i := 0; i < groups; i++ {
		g := fmt.Sprintf("g%d", i)
		onGrid(g, samples(g))
	}
}
