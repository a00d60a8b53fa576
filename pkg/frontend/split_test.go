package frontend

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSplitByInterval(t *testing.T) {
	const day = int64(24 * time.Hour / time.Millisecond)
	const h = int64(time.Hour / time.Millisecond)
	for _, tc := range []struct {
		name             string
		start, end, step int64
		want             []leg
	}{
		{"within one day", 1 * h, 5 * h, h, []leg{{1 * h, 5 * h}}},
		{"a point on the boundary starts the next leg", 22 * h, day + 2*h, h, []leg{{22 * h, 23 * h}, {day, day + 2*h}}},
		{"steps not aligned to the day", 23*h + 1000, day + 23*h + 1000, 7 * h,
			[]leg{{23*h + 1000, 23*h + 1000}, {30*h + 1000, 44*h + 1000}}},
		{"end between steps", 0, day + 90*60*1000, h, []leg{{0, 23 * h}, {day, day + h}}},
		{"one point", 5 * h, 5 * h, 60_000, []leg{{5 * h, 5 * h}}},
		{"step longer than a day", 12 * h, 4*day + 12*h, 2 * day, []leg{{12 * h, 12 * h}, {2*day + 12*h, 2*day + 12*h}, {4*day + 12*h, 4*day + 12*h}}},
		{"before the epoch", -2 * h, 2 * h, h, []leg{{-2 * h, -1 * h}, {0, 2 * h}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := splitByInterval(tc.start, tc.end, tc.step, day)
			require.Equal(t, tc.want, got)
			// Every step of the query is in exactly one leg.
			var steps []int64
			for _, l := range got {
				for ts := l.start; ts <= l.end; ts += tc.step {
					steps = append(steps, ts)
				}
			}
			var want []int64
			for ts := tc.start; ts <= tc.end; ts += tc.step {
				want = append(want, ts)
			}
			require.Equal(t, want, steps)
		})
	}
}

func TestParseRangeQuery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		form      url.Values
		split     bool
		fixedTime bool
	}{
		{"plain", url.Values{"query": {"up"}, "start": {"0"}, "end": {"86400"}, "step": {"60"}}, true, false},
		{"rfc3339 and duration step", url.Values{"query": {"up"}, "start": {"2026-01-01T00:00:00Z"}, "end": {"2026-01-03T00:00:00.5Z"}, "step": {"1m"}}, true, false},
		{"negative offset is not cached", url.Values{"query": {"up offset -1h"}, "start": {"0"}, "end": {"86400"}, "step": {"60"}}, true, true},
		{"@ is passed through", url.Values{"query": {"up @ end()"}, "start": {"0"}, "end": {"86400"}, "step": {"60"}}, false, false},
		{"no query", url.Values{"start": {"0"}, "end": {"86400"}, "step": {"60"}}, false, false},
		{"end before start", url.Values{"query": {"up"}, "start": {"100"}, "end": {"0"}, "step": {"60"}}, false, false},
		{"zero step", url.Values{"query": {"up"}, "start": {"0"}, "end": {"100"}, "step": {"0"}}, false, false},
		{"sub-millisecond step", url.Values{"query": {"up"}, "start": {"0"}, "end": {"100"}, "step": {"0.0005"}}, false, false},
		{"over 11000 points", url.Values{"query": {"up"}, "start": {"0"}, "end": {"11001"}, "step": {"1"}}, false, false},
		{"bad time", url.Values{"query": {"up"}, "start": {"yesterday"}, "end": {"0"}, "step": {"60"}}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, ok := parseRangeQuery(tc.form)
			require.Equal(t, tc.split, ok)
			if ok {
				require.Equal(t, tc.fixedTime, q.fixedTime)
			}
		})
	}
	q, ok := parseRangeQuery(url.Values{"query": {"up"}, "start": {"1767139200.5"}, "end": {"2026-01-01T00:00:00.25Z"}, "step": {"86400.5"}})
	require.True(t, ok)
	require.Equal(t, int64(1767139200500), q.start)
	require.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 250e6, time.UTC).UnixMilli(), q.end)
	require.Equal(t, int64(86_400_500), q.step)
	for _, ms := range []int64{0, 1, -1500, 1767225600123} {
		back, ok := parseTime(formatTime(ms))
		require.True(t, ok)
		require.Equal(t, ms, back)
	}
}

func TestCacheKey(t *testing.T) {
	form := url.Values{"query": {"up"}, "start": {"0"}, "end": {"200000"}, "step": {"60"}}
	l := leg{0, 86_340_000}
	k := cacheKey("ws-a", form, l)
	// The query's own bounds do not matter, only the leg's.
	other := url.Values{"query": {"up"}, "start": {"0"}, "end": {"900000"}, "step": {"60"}}
	require.Equal(t, k, cacheKey("ws-a", other, l))
	for name, k2 := range map[string]string{
		"workspace": cacheKey("ws-b", form, l),
		"query":     cacheKey("ws-a", url.Values{"query": {"down"}, "step": {"60"}}, l),
		"step":      cacheKey("ws-a", url.Values{"query": {"up"}, "step": {"30"}}, l),
		"leg start": cacheKey("ws-a", form, leg{60_000, 86_340_000}),
		"leg end":   cacheKey("ws-a", form, leg{0, 86_280_000}),
		"parameter": cacheKey("ws-a", url.Values{"query": {"up"}, "step": {"60"}, "lookback_delta": {"1m"}}, l),
	} {
		require.NotEqual(t, k, k2, name)
	}
	require.LessOrEqual(t, len(k), 250, "memcached's key limit")
}

func TestMergeAnswers(t *testing.T) {
	leg1 := `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"2"},"values":[[1,"1"]]},{"metric":{"a":"1"},"values":[[1,"2"]]}],"stats":{"timings":{"evalTotalTime":1},"samples":{"totalQueryableSamplesPerStep":[[1,3]],"totalQueryableSamples":3,"peakSamples":4}}},"warnings":["w1"]}`
	leg2 := `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[2,"5"]]},{"metric":{"a":"3"},"histograms":[[2,{"count":"1"}]]}],"stats":{"timings":{"evalTotalTime":2},"samples":{"totalQueryableSamplesPerStep":[[2,5]],"totalQueryableSamples":5,"peakSamples":2}}},"warnings":["w1","w2"],"infos":["i"]}`
	var answers []*answer
	for _, b := range []string{leg1, leg2} {
		a, err := parseAnswer([]byte(b))
		require.NoError(t, err)
		answers = append(answers, a)
	}
	out, err := mergeAnswers(answers)
	require.NoError(t, err)
	require.Equal(t, `{"status":"success","data":{"resultType":"matrix","result":[`+
		`{"metric":{"a":"1"},"values":[[1,"2"],[2,"5"]]},{"metric":{"a":"2"},"values":[[1,"1"]]},{"metric":{"a":"3"},"histograms":[[2,{"count":"1"}]]}],`+
		`"stats":{"timings":{"evalTotalTime":3,"resultSortTime":0,"queryPreparationTime":0,"innerEvalTime":0,"execQueueTime":0,"execTotalTime":0},`+
		`"samples":{"totalQueryableSamplesPerStep":[[1,3],[2,5]],"totalQueryableSamples":8,"samplesRead":0,"seriesTouched":0,"peakSamples":4}}},`+
		`"warnings":["w1","w2"],"infos":["i"]}`, string(out))

	empty, err := parseAnswer([]byte(`{"status":"success","data":{"resultType":"matrix","result":[]}}`))
	require.NoError(t, err)
	out, err = mergeAnswers([]*answer{empty, empty})
	require.NoError(t, err)
	require.Equal(t, `{"status":"success","data":{"resultType":"matrix","result":[]}}`, string(out))

	_, err = parseAnswer([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	require.Error(t, err)
}
