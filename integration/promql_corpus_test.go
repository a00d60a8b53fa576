//go:build e2e

package integration

import (
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/stretchr/testify/require"
)

// corpusFlags let a monolith take the corpus's samples, stamped from 1970
// on, and answer its queries: no sample age limit, every query read from
// the ingesters only (the store's part would start before 1970), no query
// length limit (the corpus's ranges span up to days), samples of a later
// load older than those of an earlier one (as promqltest's storage takes
// them), and a workspace for
// each set of loaded series.
var corpusFlags = append(slices.Clone(unlimitedIngestion),
	"-querier.query-ingesters-within=0",
	"-querier.query-store-after=1000000h",
	"-querier.max-query-length=0",
	"-controlplane.max-workspaces-per-account=100000",
	"-auth.control-plane-rate-limit=100000",
	"-ingester.out-of-order-time-window=100000h",
)

// TestPromQLCorpus runs Prometheus's own PromQL test corpus (the .test
// files of the pinned promqltest) through Vigil's public API: every load
// is remote-written into a workspace, every evaluation is asked of the
// workspace's query API and its JSON answer compared by promqltest. Each
// evaluation runs on its own with the loads before it (workspaces holding
// the same loads are shared), so that the pass rate of each file is known.
// The cases listed in corpusExclusions are skipped with their reason;
// VIGIL_PROMQL_CORPUS_ALL=1 runs them too. It takes about 45 s (minutes
// with -race), hence the e2e tag.
func TestPromQLCorpus(t *testing.T) {
	dir := promqltestDataDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.test"))
	require.NoError(t, err)
	require.NotEmpty(t, files)

	v := startMonolith(t, t.TempDir(), corpusFlags...)
	c := &corpusVigil{base: v.BaseURL(), empty: createWorkspace(t, v.BaseURL(), "corpus-empty"), byKey: map[string]string{}}
	engine := corpusEngine{client: &http.Client{Timeout: time.Minute}}
	runAll := os.Getenv("VIGIL_PROMQL_CORPUS_ALL") != ""

	var summary []string
	var passed, passedOutside, excluded, total int
	for _, path := range files {
		file := filepath.Base(path)
		content, err := os.ReadFile(path)
		require.NoError(t, err)
		cases := corpusCases(string(content))
		var filePassed, fileOutside, fileExcluded int
		excludedBy := map[string]int{}
		t.Run(file, func(t *testing.T) {
			for _, cc := range cases {
				reason, excl := corpusExclusion(file, cc.line)
				if excl {
					fileExcluded++
					if !runAll {
						// A feature Vigil deliberately lacks: not run,
						// counted and named in the file's line.
						excludedBy[reason]++
						continue
					}
				}
				ok := t.Run(fmt.Sprintf("line %d", cc.line), func(t *testing.T) {
					promqltest.RunTestWithStorage(t, cc.input, engine, c.newStorage(cc.loads))
				})
				switch {
				case ok && !excl:
					filePassed++
					fileOutside++
				case ok && runAll:
					filePassed++
				}
			}
		})
		line := fmt.Sprintf("%s: %d/%d passed", file, filePassed, len(cases))
		if fileExcluded > 0 {
			line += fmt.Sprintf(", %d/%d of those not excluded (%d excluded)", fileOutside, len(cases)-fileExcluded, fileExcluded)
			for _, reason := range slices.Sorted(maps.Keys(excludedBy)) {
				line += fmt.Sprintf("\n    %d: %s", excludedBy[reason], reason)
			}
		}
		t.Log(line)
		summary = append(summary, line)
		passed, passedOutside = passed+filePassed, passedOutside+fileOutside
		excluded, total = excluded+fileExcluded, total+len(cases)
	}
	t.Logf("PromQL corpus through Vigil's API: %d/%d cases passed, %d excluded, %d/%d of those not excluded:\n%s",
		passed, total, excluded, passedOutside, total-excluded, strings.Join(summary, "\n"))
}

// promqltestDataDir is the testdata directory of the promqltest package of
// the Prometheus module this module pins.
func promqltestDataDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/prometheus/prometheus").Output()
	require.NoError(t, err)
	return filepath.Join(strings.TrimSpace(string(out)), "promql", "promqltest", "testdata")
}

// corpusCase is one evaluation of a .test file, with the load commands
// before it (since the last clear).
type corpusCase struct {
	line  int      // of the eval command, from 1
	loads []string // the load commands' texts
	input string   // the loads and the eval command: a .test file
}

// corpusCases splits a .test file into its evaluations. As promqltest
// reads it, a command other than clear runs to the next blank or comment
// line.
func corpusCases(content string) []corpusCase {
	lines := strings.Split(content, "\n")
	blank := func(l string) bool {
		l = strings.TrimSpace(l)
		return l == "" || strings.HasPrefix(l, "#")
	}
	var loads []string
	var cases []corpusCase
	for i := 0; i < len(lines); i++ {
		if blank(lines[i]) {
			continue
		}
		cmd := strings.ToLower(strings.Fields(lines[i])[0])
		j := i
		for cmd != "clear" && j+1 < len(lines) && !blank(lines[j+1]) {
			j++
		}
		block := strings.Join(lines[i:j+1], "\n")
		switch {
		case cmd == "clear":
			loads = nil
		case strings.HasPrefix(cmd, "load"):
			loads = append(slices.Clone(loads), block)
		case strings.HasPrefix(cmd, "eval"):
			cases = append(cases, corpusCase{line: i + 1, loads: loads, input: strings.Join(append(slices.Clone(loads), block), "\n\n")})
		}
		i = j
	}
	return cases
}

// corpusExclusion tells whether the case of file at line is excluded, and
// why.
func corpusExclusion(file string, line int) (string, bool) {
	if reason, ok := corpusExcludedFiles[file]; ok {
		return reason, true
	}
	for _, e := range corpusExclusions {
		if e.file == file && slices.Contains(e.lines, line) {
			return e.reason, true
		}
	}
	return "", false
}

// Why cases are excluded. Prometheus 3.16 gates some features off by
// default (flags of --enable-feature); promqltest's engine turns them on,
// Vigil's engine (pkg/querier NewEngine) runs with Prometheus's defaults.
// Others are answers the query API's JSON or remote write 1.0 cannot carry.
const (
	reasonExperimental       = "needs promql-experimental-functions (functions such as info, integral, limitk, histogram_quantiles, sort_by_label, mad_over_time, ts_of_*_over_time, start, end, range, step), off in Prometheus's defaults and in Vigil"
	reasonDelayedNameRemoval = "needs promql-delayed-name-removal (the metric name kept until the end of evaluation, and named in annotations), off in Prometheus's defaults and in Vigil"
	reasonCounterResetHint   = "expects a histogram's counter reset hint, which the query API's JSON does not carry"
	reasonEmptyBuckets       = "expects what the query API's JSON leaves out with a histogram's empty buckets: the zero bucket's width, custom bucket bounds, or the schema of a histogram without populated buckets"
	reasonNegativeZero       = "loads -0, which remote write 1.0 (proto3, omitting a zero value) delivers as 0"
)

// corpusExcludedFiles are the files about a feature Vigil does not have.
var corpusExcludedFiles = map[string]string{
	"fill-modifier.test":       "needs promql-binop-fill-modifiers (fill, fill_left, fill_right of binary operators), off in Prometheus's defaults and in Vigil",
	"info.test":                reasonExperimental,
	"limit.test":               reasonExperimental,
	"start_timestamps.test":    "needs start timestamps, which remote write 1.0 does not carry, and the engine's use-start-timestamps, off in Prometheus's defaults and in Vigil",
	"unquoted_utf8_names.test": "needs UTF-8 metric and label names, which Vigil refuses at ingestion (as AMP), and promql-unquoted-utf8-names, off in Prometheus's defaults",
}

// corpusExclusions are the other excluded cases, by the line of their eval
// command in the .test files of Prometheus v0.316.0.
var corpusExclusions = []struct {
	file   string
	reason string
	lines  []int
}{
	{"functions.test", reasonCounterResetHint, []int{
		245, 249, 256, 260, 271, 328, 332, 339, 343, 353,
	}},
	{"histograms.test", reasonCounterResetHint, []int{
		1173,
	}},
	{"native_histograms.test", reasonCounterResetHint, []int{
		1131, 1266, 1807, 1815, 1825, 1833, 1863, 1870, 1877, 1884, 1889, 1906, 1911, 1916, 1921, 1927, 1932, 1937,
		1942, 1948, 1953, 1958, 1963, 2073, 2170,
	}},
	{"range_queries.test", reasonCounterResetHint, []int{
		93,
	}},
	{"histograms.test", reasonDelayedNameRemoval, []int{
		1197, 1207, 1218, 1228, 1239, 1249, 1260, 1273, 1284, 1297, 1307,
	}},
	{"name_label_dropping.test", reasonDelayedNameRemoval, []int{
		59, 64, 69, 74, 89, 115, 119, 123,
	}},
	{"native_histograms.test", reasonDelayedNameRemoval, []int{
		1616, 1621, 1631, 1635, 1639, 1644, 1648, 1653, 1672, 1676, 1691, 1695, 2045, 2048, 2051,
	}},
	{"functions.test", reasonEmptyBuckets, []int{
		267,
	}},
	{"histograms.test", reasonEmptyBuckets, []int{
		1141,
	}},
	{"native_histograms.test", reasonEmptyBuckets, []int{
		6, 960, 964, 968, 988, 996, 1000, 1004, 1008, 1020, 1138, 1225, 1229, 1254, 1257, 1277, 1306, 1322, 1326,
		1330, 1349, 1365, 1370, 1374, 1596, 2186, 2189, 2203, 2213, 2219, 2226, 2232, 2240, 2255, 2263, 2278, 2286,
		2310, 2321, 2324, 2328, 2331, 2334, 2341, 2344, 2357, 2365, 2368, 2371, 2390, 2394, 2402, 2410,
		2454, 2458, 2536, 2540, 2544, 2548, 2552, 2556, 2560, 2564, 2568, 2572,
	}},
	{"operators.test", reasonEmptyBuckets, []int{
		973,
	}},
	{"aggregators.test", reasonExperimental, []int{
		425, 428,
	}},
	{"at_modifier.test", reasonExperimental, []int{
		283,
	}},
	{"functions.test", reasonExperimental, []int{
		789, 802, 815, 828, 841, 854, 867, 880, 893, 906, 912, 933, 941, 949, 961, 1003, 1006, 1010, 1014, 1017,
		1026, 1296, 1305, 1323, 1327, 1331, 1335, 1338, 1345, 1349, 1353, 1358, 1362, 1366, 1371, 1374, 1377, 1381,
		1384, 1387, 1391, 1394, 1397, 1402, 1405, 1408, 1412, 1415, 1418, 1422, 1425, 1428, 1436, 1439, 1443, 1446,
		1450, 1453, 1458, 1463, 1467, 1471, 1476, 1480, 1484, 1489, 1493, 1497, 1554, 1559, 1564, 1569, 1574, 1578,
		1582, 1591, 1594, 1604, 1607, 1610, 1613, 1623, 1626, 1629, 1632, 1635, 2377, 2380, 2383, 2387, 2390, 2393,
		2397, 2401, 2404, 2408, 2411, 2418, 2421, 2425, 2429, 2436, 2439, 2442, 2446, 2449, 2452, 2456, 2459, 2463,
		2466, 2470, 2473, 2477, 2480, 2484, 2487, 2491, 2494, 2517, 2520, 2523, 2526, 2530, 2533, 2537, 2540, 2544,
		2547, 2551, 2554, 2557, 2560,
	}},
	{"histograms.test", reasonExperimental, []int{
		640, 653, 686, 691, 708, 713, 730, 735, 743, 1076, 1202, 1223, 1244, 1278, 1302,
	}},
	{"native_histograms.test", reasonExperimental, []int{
		65, 1240, 1243, 1248, 1626, 2054, 2126,
	}},
	{"range_queries.test", reasonExperimental, []int{
		115, 118,
	}},
	{"aggregators.test", reasonNegativeZero, []int{
		1024, 1035, 1047,
	}},
}
