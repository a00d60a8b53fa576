package ingester

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// errMaxSeries marks an append refused because the ingester holds its
// -ingester.instance-limits.max-series.
var errMaxSeries = errors.New("ingester series limit reached")

func maxInflightError(limit int) error {
	return apierror.New(apierror.Unavailable, apierror.IDIngesterMaxInflightRequests,
		"the write request has been rejected because the ingester exceeded the allowed number of inflight push requests (limit: %d, -ingester.instance-limits.max-inflight-push-requests); retry later", limit)
}

func maxSeriesError(limit, refused int) error {
	return apierror.New(apierror.Unavailable, apierror.IDIngesterMaxSeries,
		"%d sample(s) of new series rejected because the ingester exceeded the allowed number of in-memory series (limit: %d, -ingester.instance-limits.max-series); retry later or add ingesters", refused, limit)
}

// seriesCounter counts the in-memory series of one workspace's TSDB into the
// ingester's total, and refuses new series once the total reaches the
// instance limit, the memory guard's heap or a limit of the workspace. It
// never refuses while the WAL is replayed: those series were acknowledged
// before.
type seriesCounter struct {
	total     *atomic.Int64
	max       int
	replaying atomic.Bool
	own       atomic.Int64 // series of this TSDB
	perMetric metricSeries // series of this TSDB per metric name
	// limiter enforces the memory guard and the workspace's series
	// limits; nil until the TSDB is open.
	limiter atomic.Pointer[seriesLimiter]
	// labelSets enforces the workspace's label-set limits; nil: none.
	labelSets atomic.Pointer[labelSetLimiter]
}

func (c *seriesCounter) PreCreation(lset labels.Labels) error {
	if c.replaying.Load() {
		return nil
	}
	if c.max > 0 && c.total.Load() >= int64(c.max) {
		return errMaxSeries
	}
	if l := c.limiter.Load(); l != nil {
		if err := l.check(c, lset); err != nil {
			return err
		}
	}
	if l := c.labelSets.Load(); l != nil {
		return l.check(lset)
	}
	return nil
}

func (c *seriesCounter) PostCreation(lset labels.Labels) {
	c.own.Add(1)
	c.total.Add(1)
	c.perMetric.add(lset.Get(labels.MetricName), 1)
	if l := c.labelSets.Load(); l != nil {
		l.add(lset, 1)
	}
}

func (c *seriesCounter) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	c.own.Add(-int64(len(deleted)))
	c.total.Add(-int64(len(deleted)))
	for _, lset := range deleted {
		c.perMetric.add(lset.Get(labels.MetricName), -1)
	}
	if l := c.labelSets.Load(); l != nil {
		for _, lset := range deleted {
			l.add(lset, -1)
		}
	}
}

// closed takes the TSDB's series out of the total: a closed TSDB frees them
// without deleting them one by one.
func (c *seriesCounter) closed() {
	c.total.Add(-c.own.Swap(0))
}

func (c *seriesCounter) String() string { return fmt.Sprintf("%d series", c.own.Load()) }
