package ruler

import (
	"context"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-metrics/vigil/pkg/push"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// Pusher stores a workspace's samples through the write path's stages, so
// that its limits and usage apply to what rules record as to what it is
// sent (the distributor's Push, in process).
type Pusher interface {
	Push(ctx context.Context, req *push.Request) error
}

// pushAppendable is a workspace's storage.AppendableV2 for the rules
// manager: what an evaluation appends is pushed as one request on Commit.
type pushAppendable struct {
	pusher    Pusher
	workspace string
}

func (a pushAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &pushAppender{ctx: tenant.WithID(ctx, a.workspace), pusher: a.pusher}
}

type pushAppender struct {
	ctx    context.Context
	pusher Pusher
	series []prompb.TimeSeries
}

func (a *pushAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	ts := prompb.TimeSeries{Labels: prompb.FromLabels(ls, nil)}
	switch {
	case fh != nil:
		ts.Histograms = []prompb.Histogram{prompb.FromFloatHistogram(t, fh)}
	case h != nil:
		ts.Histograms = []prompb.Histogram{prompb.FromIntHistogram(t, h)}
	default:
		ts.Samples = []prompb.Sample{{Timestamp: t, Value: v}}
	}
	a.series = append(a.series, ts)
	// The rules manager keys nothing on the reference: any non-zero one.
	return storage.SeriesRef(len(a.series)), nil
}

// Commit pushes what was appended. A refused sample (a limit, a sample out
// of order) fails the commit, which the rules manager counts and logs.
func (a *pushAppender) Commit() error {
	if len(a.series) == 0 {
		return nil
	}
	req := push.NewRequest(prompb.WriteRequest{Timeseries: a.series}, nil, nil, nil)
	a.series = nil
	return a.pusher.Push(a.ctx, req)
}

func (a *pushAppender) Rollback() error {
	a.series = nil
	return nil
}
