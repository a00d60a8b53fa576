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

// rulerEvaluations reads a ruler's evaluations of each group of a
// workspace from its metrics (AMP's RuleEvaluations).
func rulerEvaluations(t *testing.T, p *process, ws string) map[string]int {
	t.Helper()
	resp, err := http.Get(p.admin() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	re := regexp.MustCompile(`vigil_ruler_rule_evaluations_total\{rule_group="handoff;(g\d+)",workspace="` + regexp.QuoteMeta(ws) + `"\} (\d+)`)
	out := map[string]int{}
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		n, _ := strconv.Atoi(m[2])
		out[m[1]] = n
	}
	return out
}

// TestClusterRulerHandoff: two ruler processes split a workspace's groups.
// One is killed with SIGKILL: the other takes its groups within one
// evaluation interval. Each group's samples show every evaluation once:
// no timestamp evaluated by both rulers (the rulers' evaluation counts add
// up to the samples written), and no gap over two intervals.
func TestClusterRulerHandoff(t *testing.T) {
	const interval = 10 * time.Second
	c := startCluster(t, "-ruler.min-evaluation-interval=1s")
	var rulers []*process
	for _, id := range []string{"ruler-1", "ruler-2"} {
		p := newProcess(t, id, append(c.common(id),
			"-target=ruler",
			"-ruler.ring.instance-id="+id, "-ruler.ring.instance-addr=127.0.0.1",
			"-ruler.ring.heartbeat-period=500ms", "-ruler.ring.heartbeat-timeout=3s",
			"-ruler.poll-interval=1s", "-ruler.handoff-wait=2s")...)
		p.join = func() string { return gossipOf(c.all()...) }
		p.start()
		waitReady(t, p.base())
		rulers = append(rulers, p)
	}
	ws := createWorkspace(t, c.dist.base(), "handoff")
	rules := "groups:\n"
	for i := 0; i < 8; i++ {
		rules += fmt.Sprintf("  - name: g%d\n    interval: %s\n    rules:\n      - record: handoff:g%d\n        expr: vector(%d)\n", i, model.Duration(interval), i, i)
	}
	createNamespace(t, c.dist.base(), ws, "handoff", rules)

	// Both rulers evaluate groups of their own.
	require.Eventually(t, func() bool {
		return len(rulerEvaluations(t, rulers[0], ws)) > 0 && len(rulerEvaluations(t, rulers[1], ws)) > 0
	}, 60*time.Second, 500*time.Millisecond, "each ruler evaluates some of the groups")
	time.Sleep(3 * interval)

	// Kill the ruler with the most groups, right after an evaluation, its
	// count read just before.
	victim, survivor := rulers[0], rulers[1]
	if len(rulerEvaluations(t, rulers[1], ws)) > len(rulerEvaluations(t, rulers[0], ws)) {
		victim, survivor = rulers[1], rulers[0]
	}
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
	victimGroups := rulerEvaluations(t, victim, ws)
	var watched string
	for g := range victimGroups {
		watched = g
		break
	}
	last := samples(watched)
	require.NotEmpty(t, last)
	// Its evaluations fall on one grid: wait for 1 s past the next one.
	next := time.UnixMilli(last[len(last)-1]).Add(interval + time.Second)
	time.Sleep(time.Until(next))
	before := rulerEvaluations(t, victim, ws)
	victim.kill()
	killed := time.Now()

	// The survivor evaluates the victim's groups within one interval.
	for g := range victimGroups {
		require.Eventually(t, func() bool { return rulerEvaluations(t, survivor, ws)[g] > 0 }, interval+5*time.Second, 200*time.Millisecond,
			"the survivor takes group %s", g)
	}
	require.Less(t, time.Since(killed), interval+5*time.Second)
	time.Sleep(2 * interval)

	// Read the survivor's counts 1 s past an evaluation, then the samples.
	last = samples(watched)
	time.Sleep(time.Until(time.UnixMilli(last[len(last)-1]).Add(interval + time.Second)))
	after := rulerEvaluations(t, survivor, ws)
	onGrid := func(g string, ts []int64) {
		t.Helper()
		for j := 1; j < len(ts); j++ {
			gap := time.Duration(ts[j]-ts[j-1]) * time.Millisecond
			require.Greater(t, gap, interval/2, "group %s: two evaluations %s apart", g, gap)
			require.LessOrEqual(t, gap, 2*interval, "group %s: a gap of %s", g, gap)
		}
	}
	for i := 0; i < 8; i++ {
		g := fmt.Sprintf("g%d", i)
		ts := samples(g)
		require.Equal(t, before[g]+after[g], len(ts), "group %s: every evaluation wrote one sample, none by both rulers", g)
		onGrid(g, ts)
	}

	// The victim comes back and takes its groups back from the survivor,
	// both alive: still one evaluation per interval, none missed twice.
	victim.start()
	require.Eventually(t, func() bool { return len(rulerEvaluations(t, victim, ws)) > 0 }, 30*time.Second, 200*time.Millisecond)
	time.Sleep(2 * interval)
	for i := 0; i < 8; i++ {
		g := fmt.Sprintf("g%d", i)
		onGrid(g, samples(g))
	}
}
