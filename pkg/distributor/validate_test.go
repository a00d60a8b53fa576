package distributor

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

type staticLimits struct {
	maxLabels, maxSize, maxName, maxValue   int
	grace, pastGrace                        time.Duration
	maxMetadataLength, maxMetadataPerMetric int
	rate                                    float64
	burst                                   int
	ha                                      bool
}

func (l staticLimits) PastGracePeriod(string) time.Duration { return l.pastGrace }
func (l staticLimits) MaxMetadataLength(string) int         { return l.maxMetadataLength }
func (l staticLimits) MaxMetadataPerMetric(string) int      { return l.maxMetadataPerMetric }
func (l staticLimits) IngestionRate(string) float64         { return l.rate }
func (l staticLimits) IngestionBurstSize(string) int        { return l.burst }
func (l staticLimits) AcceptHASamples(string) bool          { return l.ha }
func (l staticLimits) HAClusterLabel(string) string         { return "cluster" }
func (l staticLimits) HAReplicaLabel(string) string         { return "__replica__" }
func (l staticLimits) HAMaxClusters(string) int             { return 500 }

func (l staticLimits) MaxLabelNamesPerSeries(string) int { return l.maxLabels }
func (l staticLimits) MaxLabelsSizeBytes(string) int     { return l.maxSize }
func (l staticLimits) MaxLabelNameLength(string) int     { return l.maxName }
func (l staticLimits) MaxLabelValueLength(string) int    { return l.maxValue }
func (l staticLimits) CreationGracePeriod(string) time.Duration {
	return l.grace
}

var defaultTestLimits = staticLimits{maxLabels: 5, maxSize: 100, maxName: 20, maxValue: 30, grace: 10 * time.Minute}

func lbls(kv ...string) []prompb.Label {
	var out []prompb.Label
	for i := 0; i < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func TestValidateSeries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels []prompb.Label
		reason string // empty: valid
		msg    string
	}{
		{"valid", lbls("__name__", "up", "job", "a"), "", ""},
		{"valid unsorted gets sorted", lbls("job", "a", "__name__", "up"), "", ""},
		{"colon in metric name", lbls("__name__", "job:up:sum"), "", ""},
		{"empty values are dropped", lbls("__name__", "up", "a", "", "job", "x", "z", ""), "", ""},
		{"empty metric name after a real one", lbls("__name__", "up", "__name__", ""), "", ""},
		{"missing metric name", lbls("job", "a"), reasonMissingMetricName, "without a metric name"},
		{"empty metric name", lbls("__name__", "", "job", "a"), reasonMissingMetricName, "without a metric name"},
		{"invalid metric name", lbls("__name__", "1up"), reasonInvalidMetricName, "invalid metric name: '1up'"},
		{"invalid label name", lbls("__name__", "up", "a-b", "x"), reasonInvalidLabel, "invalid label name: 'a-b'"},
		{"label name with digit first", lbls("__name__", "up", "0a", "x"), reasonInvalidLabel, "invalid label name"},
		{"duplicate label", lbls("__name__", "up", "job", "a", "job", "b"), reasonDuplicateLabel, "duplicate label name, label: 'job'"},
		{"too many labels", lbls("__name__", "up", "a", "1", "b", "1", "c", "1", "d", "1", "e", "1"), reasonTooManyLabels, "series has too many labels (actual: 6, limit: 5)"},
		{"label name too long", lbls("__name__", "up", strings.Repeat("n", 21), "x"), reasonLabelNameTooLong, "label name length exceeds"},
		{"label value too long", lbls("__name__", "up", "job", strings.Repeat("v", 31)), reasonLabelValueTooLong, "label value length exceeds"},
		{"labels too large", lbls("__name__", "up", "a", strings.Repeat("v", 30), "b", strings.Repeat("v", 30), "c", strings.Repeat("v", 30)), reasonLabelsTooLarge, "labels are too large"},
		{"invalid utf8 value", lbls("__name__", "up", "job", "\xff"), reasonInvalidLabel, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := &prompb.TimeSeries{Labels: tc.labels}
			lim := resolveLimits(defaultTestLimits, "ws-1", time.Now())
			v, changed := validateSeries(lim, ts)
			if tc.reason == "" {
				require.Empty(t, v.reason)
				// A changed series is encoded again for the ingesters; an
				// unchanged one goes as its bytes.
				require.Equal(t, tc.name == "valid unsorted gets sorted" || strings.HasPrefix(tc.name, "empty"), changed)
				for _, l := range ts.Labels {
					require.NotEmpty(t, l.Value, "label %s", l.Name)
				}
				for i := 1; i < len(ts.Labels); i++ {
					require.Less(t, ts.Labels[i-1].Name, ts.Labels[i].Name)
				}
				return
			}
			require.Equal(t, tc.reason, v.reason)
			require.Contains(t, v.err(lim, ts.Labels).Error(), tc.msg)
		})
	}
}

func TestShardTokenSpreadsAndSeparatesWorkspaces(t *testing.T) {
	a := shardToken("ws-a", lbls("__name__", "up", "job", "x"))
	require.Equal(t, a, shardToken("ws-a", lbls("__name__", "up", "job", "x")))
	require.NotEqual(t, a, shardToken("ws-b", lbls("__name__", "up", "job", "x")))
	// The separators keep {ab="c"} and {a="bc"} apart.
	require.NotEqual(t, shardToken("w", lbls("ab", "c")), shardToken("w", lbls("a", "bc")))
}

// TestFastPathAgreesWithFullValidation: on label sets drawn from a small
// alphabet of names and values (valid, invalid, empty, repeated, long, out of
// order), the one-pass check accepts exactly the sets the full validation
// accepts without changing them.
func TestFastPathAgreesWithFullValidation(t *testing.T) {
	names := []string{"__name__", "a", "b", "job", "0bad", "a-b", "a:b", strings.Repeat("n", 21), "_x", "Z9"}
	values := []string{"up", "", "x", "1up", "\xff", strings.Repeat("v", 31), "job:sum", "ünï"}
	lim := resolveLimits(defaultTestLimits, "ws-1", time.Now())
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		var ls []prompb.Label
		for j := rng.IntN(7); j > 0; j-- {
			ls = append(ls, prompb.Label{Name: names[rng.IntN(len(names))], Value: values[rng.IntN(len(values))]})
		}
		if rng.IntN(2) == 0 {
			slices.SortStableFunc(ls, compareLabelNames)
		}
		fast := validSorted(lim, ls)
		full := &prompb.TimeSeries{Labels: slices.Clone(ls)}
		v, changed := validateFull(lim, full)
		slow := v.reason == "" && !changed
		if fast {
			require.True(t, slow, "fast path accepted %v", ls)
		}
		if !fast && slow {
			// Only a series the full path accepts untouched may be refused
			// by the fast path, and then it cannot be: its labels are
			// sorted, distinct and valid.
			t.Fatalf("fast path refused a valid series %v", ls)
		}
	}
}

// TestNameTablesMatchTheRules checks the byte tables of name validation
// against the rules as written (Prometheus's legacy names) for every byte at
// the first and at a later position.
func TestNameTablesMatchTheRules(t *testing.T) {
	letter := func(c byte) bool { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
	digit := func(c byte) bool { return c >= '0' && c <= '9' }
	require.False(t, isLegacyLabelName(""))
	require.False(t, isLegacyMetricName(""))
	for a := 0; a < 256; a++ {
		first := string([]byte{byte(a)})
		require.Equal(t, letter(byte(a)), isLegacyLabelName(first), "label name %q", first)
		require.Equal(t, letter(byte(a)) || a == ':', isLegacyMetricName(first), "metric name %q", first)
		for b := 0; b < 256; b++ {
			s := string([]byte{'a', byte(b)})
			require.Equal(t, letter(byte(b)) || digit(byte(b)), isLegacyLabelName(s), "label name %q", s)
			require.Equal(t, letter(byte(b)) || digit(byte(b)) || b == ':', isLegacyMetricName(s), "metric name %q", s)
		}
	}
}
