package storegateway

import (
	"sync/atomic"
	"time"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// requestLimits counts what one request reads, against the
// workspace's per-query limits: a store-gateway stops a request over them
// by itself, whatever its caller counts.
type requestLimits struct {
	maxSeries     int
	maxBytes      int64
	series, bytes atomic.Int64
}

// newRequestLimits returns the limits of one request over [mint, maxt]; the
// bytes limit holds per started 24 hours, as the querier's does.
func newRequestLimits(l Limits, workspace string, mint, maxt int64) *requestLimits {
	if l == nil {
		return &requestLimits{}
	}
	bytes := l.MaxFetchedChunkBytesPerQuery(workspace)
	day := (24 * time.Hour).Milliseconds()
	if days := (maxt - mint + day - 1) / day; days > 1 && bytes > 0 {
		bytes *= days
	}
	return &requestLimits{maxSeries: l.MaxFetchedSeriesPerQuery(workspace), maxBytes: bytes}
}

func (r *requestLimits) addSeries() error {
	if n := r.series.Add(1); r.maxSeries > 0 && n > int64(r.maxSeries) {
		return apierror.New(apierror.LimitExceeded, apierror.IDMaxSeriesPerQuery,
			"the query hit the max number of series limit (limit: %d series, -querier.max-fetched-series-per-query)", r.maxSeries)
	}
	return nil
}

func (r *requestLimits) addChunkBytes(n int) error {
	if total := r.bytes.Add(int64(n)); r.maxBytes > 0 && total > r.maxBytes {
		return apierror.New(apierror.LimitExceeded, apierror.IDMaxChunkBytesPerQuery,
			"the query hit the aggregated chunks size limit (limit: %d bytes, -querier.max-fetched-chunk-bytes-per-query)", r.maxBytes)
	}
	return nil
}
