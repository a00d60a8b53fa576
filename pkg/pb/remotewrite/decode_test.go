package remotewrite

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

func lbls(kv ...string) []prompb.Label {
	var out []prompb.Label
	for i := 0; i < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func sampleRequest(seed int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for i := 0; i < 1+seed%5; i++ {
		ts := prompb.TimeSeries{Labels: lbls("__name__", "m", "i", string(rune('a'+i+seed)))}
		for j := 0; j < i+seed%3; j++ {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: int64(seed*100 + j), Value: float64(j) / 3})
		}
		if i == 1 {
			ts.Histograms = []prompb.Histogram{{
				Timestamp: 5, Count: &prompb.Histogram_CountFloat{CountFloat: 2}, Sum: 3, Schema: 1,
				ZeroCount:     &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: 0},
				PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 1}}, PositiveCounts: []float64{2},
			}}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	if seed%2 == 0 {
		req.Metadata = []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "m", Help: "h"}}
	}
	return req
}

// normalise drops the differences that do not matter: nil versus empty.
func normalise(req *prompb.WriteRequest) *prompb.WriteRequest {
	out := &prompb.WriteRequest{Metadata: req.Metadata}
	for _, ts := range req.Timeseries {
		c := prompb.TimeSeries{Labels: append([]prompb.Label{}, ts.Labels...), Samples: append([]prompb.Sample{}, ts.Samples...)}
		for _, h := range ts.Histograms {
			c.Histograms = append(c.Histograms, h)
		}
		out.Timeseries = append(out.Timeseries, c)
	}
	if len(out.Metadata) == 0 {
		out.Metadata = nil
	}
	return out
}

// TestDecodeMatchesGeneratedCode decodes a sequence of differently shaped
// requests into one reused request, as the pool does, and compares each with
// the generated protobuf decoder's result.
func TestDecodeMatchesGeneratedCode(t *testing.T) {
	var reused prompb.WriteRequest
	for seed := 0; seed < 20; seed++ {
		raw, err := sampleRequest(seed).Marshal()
		require.NoError(t, err)
		var want prompb.WriteRequest
		require.NoError(t, want.Unmarshal(raw))

		reused.Timeseries, reused.Metadata = reused.Timeseries[:0], reused.Metadata[:0]
		require.NoError(t, Decode(raw, &reused, nil))
		require.Equal(t, normalise(&want), normalise(&reused), "seed %d", seed)
	}
}

func TestDecodeRejectsTruncated(t *testing.T) {
	raw, err := sampleRequest(3).Marshal()
	require.NoError(t, err)
	for cut := 1; cut < len(raw); cut++ {
		var req prompb.WriteRequest
		if err := Decode(raw[:cut], &req, nil); err == nil {
			// A cut on a field boundary is a valid, shorter message.
			var want prompb.WriteRequest
			require.NoError(t, want.Unmarshal(raw[:cut]), "cut %d", cut)
		}
	}
}

func FuzzDecodeWriteRequest(f *testing.F) {
	for seed := 0; seed < 5; seed++ {
		raw, _ := sampleRequest(seed).Marshal()
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got, want prompb.WriteRequest
		errGot := Decode(raw, &got, nil) // must not panic
		if errGot != nil || want.Unmarshal(raw) != nil {
			return
		}
		// Where both decoders accept the input, they agree on the series.
		require.Len(t, got.Timeseries, len(want.Timeseries))
		for i := range want.Timeseries {
			require.Equal(t, len(want.Timeseries[i].Labels), len(got.Timeseries[i].Labels))
			for j, l := range want.Timeseries[i].Labels {
				require.Equal(t, l.Name, got.Timeseries[i].Labels[j].Name)
				require.Equal(t, l.Value, got.Timeseries[i].Labels[j].Value)
			}
			require.Equal(t, len(want.Timeseries[i].Samples), len(got.Timeseries[i].Samples))
			for j, smp := range want.Timeseries[i].Samples {
				require.Equal(t, smp.Timestamp, got.Timeseries[i].Samples[j].Timestamp)
				require.Equal(t, math.Float64bits(smp.Value), math.Float64bits(got.Timeseries[i].Samples[j].Value))
			}
		}
	})
}

// TestPaddedSeriesKeys: a series may come under a key longer than the one
// byte 0x0a (a varint with padding, which protobuf decoders accept); it is
// counted and decoded like any other, never past the room counted for.
func TestPaddedSeriesKeys(t *testing.T) {
	raw, err := sampleRequest(1).Marshal()
	require.NoError(t, err)
	one, err := (&prompb.TimeSeries{Labels: lbls("__name__", "padded"), Samples: []prompb.Sample{{Timestamp: 7, Value: 1}}}).Marshal()
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		raw = append(raw, 0x8a, 0x00, 0x00)                 // an empty series under a padded key
		raw = append(raw, 0x8a, 0x80, 0x00, byte(len(one))) // and a real one
		raw = append(raw, one...)
	}
	var want prompb.WriteRequest
	require.NoError(t, want.Unmarshal(raw))
	var got prompb.WriteRequest
	var series [][]byte
	require.NoError(t, DecodeWithRaw(raw, &got, &series, nil))
	require.Equal(t, normalise(&want), normalise(&got))
	require.Len(t, series, len(want.Timeseries))
}

// TestReusedSlotsKeepNothing decodes into one request, reused as the pools
// reuse it: after full labels and samples, labels and samples with fields
// left out, repeated or in reverse order must decode as the generated code
// decodes them, with nothing left from the earlier request.
func TestReusedSlotsKeepNothing(t *testing.T) {
	label := func(fields ...[]byte) []byte { return bytes.Join(fields, nil) }
	str := func(num byte, s string) []byte { return append([]byte{num<<3 | 2, byte(len(s))}, s...) }
	sample := func(fields ...[]byte) []byte { return bytes.Join(fields, nil) }
	value := func(v float64) []byte {
		return binary.LittleEndian.AppendUint64([]byte{0x09}, math.Float64bits(v))
	}
	stamp := func(ts uint64) []byte { return binary.AppendUvarint([]byte{0x10}, ts) }
	series := func(labelsAndSamples ...[]byte) []byte {
		var b []byte
		for i, f := range labelsAndSamples {
			num := byte(1)
			if i%2 == 1 {
				num = 2
			}
			b = append(append(b, num<<3|2, byte(len(f))), f...)
		}
		return append(binary.AppendUvarint([]byte{0x0a}, uint64(len(b))), b...)
	}
	full := series(label(str(1, "name"), str(2, "value")), sample(value(1.5), stamp(9)))
	for _, next := range []struct {
		name string
		raw  []byte
	}{
		{"value only, timestamp only", series(label(str(2, "v")), sample(stamp(3)))},
		{"name only, value only", series(label(str(1, "n")), sample(value(2.5)))},
		{"empty label, empty sample", series(label(), sample())},
		{"reverse order", series(label(str(2, "v"), str(1, "n")), sample(stamp(4), value(3.5)))},
		{"repeated fields: the last wins", series(label(str(1, "a"), str(2, "b"), str(1, "c")), sample(value(1), stamp(5), value(6)))},
	} {
		t.Run(next.name, func(t *testing.T) {
			var got prompb.WriteRequest
			require.NoError(t, Decode(full, &got, nil))
			require.Equal(t, "value", got.Timeseries[0].Labels[0].Value)
			got.Timeseries = got.Timeseries[:0]
			require.NoError(t, Decode(next.raw, &got, nil))
			var want prompb.WriteRequest
			require.NoError(t, want.Unmarshal(next.raw))
			require.Equal(t, normalise(&want), normalise(&got))
		})
	}
}

func TestAppendWithoutLabel(t *testing.T) {
	ts := prompb.TimeSeries{
		Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "__replica__", Value: "a"}, {Name: "cluster", Value: strings.Repeat("c", 300)}},
		Samples: []prompb.Sample{{Timestamp: 1, Value: 2}},
	}
	raw, err := ts.Marshal()
	require.NoError(t, err)
	for i := range ts.Labels {
		out, ok := AppendWithoutLabel([]byte("prefix"), raw, i, ts.Labels[i].Name)
		require.True(t, ok)
		require.Equal(t, "prefix", string(out[:6]))
		var got prompb.TimeSeries
		require.NoError(t, got.Unmarshal(out[6:]))
		want := ts
		want.Labels = slices.Delete(slices.Clone(ts.Labels), i, i+1)
		require.Equal(t, want, got)
	}
	out, ok := AppendWithoutLabel(nil, raw, 3, "cluster")
	require.False(t, ok, "no fourth label")
	require.Nil(t, out)
	_, ok = AppendWithoutLabel(nil, raw[:20], 2, "cluster")
	require.False(t, ok, "truncated before the label")
	_, ok = AppendWithoutLabel(nil, raw, 1, "cluster")
	require.False(t, ok, "the second label is not named cluster")

	// A field 1 of another wire type is not a label to the decoder, nor to
	// the cut: a stray varint field 1 ahead of the labels must not shift
	// which label is cut. Before the fix the cut removed __name__ here.
	stray := append([]byte{0x08, 0x00}, raw...)
	var decoded prompb.WriteRequest
	var raws [][]byte
	req := append(binary.AppendUvarint([]byte{0x0a}, uint64(len(stray))), stray...)
	require.NoError(t, DecodeWithRaw(req, &decoded, &raws, nil))
	require.Equal(t, "__replica__", decoded.Timeseries[0].Labels[1].Name)
	out, ok = AppendWithoutLabel(nil, raws[0], 1, "__replica__")
	require.True(t, ok)
	var got prompb.WriteRequest
	require.NoError(t, Decode(append(binary.AppendUvarint([]byte{0x0a}, uint64(len(out))), out...), &got, nil), "as the ingester decodes it")
	require.Equal(t, []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "cluster", Value: strings.Repeat("c", 300)}}, got.Timeseries[0].Labels)
}
