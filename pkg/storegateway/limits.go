package storegateway

import (
	"time"

	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/pb/ingesterpb"
)

// requestLimits counts what one Series request sends, against the
// workspace's per-query limits: a store-gateway stops a request over them
// by itself, whatever its caller counts.
type requestLimits struct {
	maxSeries     int
	maxBytes      int64
	series, bytes int64
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
	r.series++
	if r.maxSeries > 0 && r.series > int64(r.maxSeries) {
		return apierror.New(apierror.LimitExceeded, apierror.IDMaxSeriesPerQuery,
			"the query hit the max number of series limit (limit: %d series, -querier.max-fetched-series-per-query)", r.maxSeries)
	}
	return nil
}

func (r *requestLimits) addChunks(batch []ingesterpb.StreamingSeries) error {
	for _, s := range batch {
		for _, c := range s.Chunks {
			r.bytes += int64(len(c.Data))
		}
	}
	if r.maxBytes > 0 && r.bytes > r.maxBytes {
		return apierror.New(apierror.LimitExceeded, apierror.IDMaxChunkBytesPerQuery,
			"the query hit the aggregated chunks size limit (limit: %d bytes, -querier.max-fetched-chunk-bytes-per-query)", r.maxBytes)
	}
	return nil
}

// limitedSet fails once it reached more series than its limits allow.
type limitedSet struct {
	storage.ChunkSeriesSet
	limits *requestLimits
	err    error
}

func (s *limitedSet) Next() bool {
	if s.err != nil || !s.ChunkSeriesSet.Next() {
		return false
	}
	if err := s.limits.addSeries(); err != nil {
		s.err = err
		return false
	}
	return true
}

func (s *limitedSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.ChunkSeriesSet.Err()
}
