package seriespb

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

func TestMatchersRoundTrip(t *testing.T) {
	in := []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"),
		labels.MustNewMatcher(labels.MatchNotEqual, "job", "a"),
		labels.MustNewMatcher(labels.MatchRegexp, "instance", "10\\..*"),
		labels.MustNewMatcher(labels.MatchNotRegexp, "zone", "b|c"),
	}
	out, err := FromProtoMatchers(ToProtoMatchers(in))
	require.NoError(t, err)
	require.Equal(t, len(in), len(out))
	for i := range in {
		require.Equal(t, in[i].String(), out[i].String())
	}
	_, err = FromProtoMatchers([]prompb.LabelMatcher{{Type: 9, Name: "x"}})
	require.ErrorContains(t, err, "invalid matcher type")
	_, err = FromProtoMatchers([]prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "x", Value: "("}})
	require.Error(t, err)
}
