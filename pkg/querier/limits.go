package querier

import (
	"sync/atomic"
	"time"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// Limits are the per-workspace limits of what one query may read.
type Limits interface {
	MaxFetchedSeriesPerQuery(workspace string) int
	MaxFetchedChunksPerQuery(workspace string) int
	MaxFetchedSamplesPerQuery(workspace string) int
	MaxFetchedChunkBytesPerQuery(workspace string) int64
}

// queryLimiter counts what one query reads from every replica and refuses
// the read that goes over a limit. It is shared by the replicas' series
// sets, which may be read from several goroutines.
type queryLimiter struct {
	maxSeries, maxChunks, maxSamples, maxBytes int64

	series, chunks, samples, bytes atomic.Int64
}

// newQueryLimiter returns the limiter of one query of workspace over
// [mint, maxt]. The bytes limit holds per 24 hours of the span, as AMP's
// query bytes quota does for range queries.
func newQueryLimiter(l Limits, workspace string, mint, maxt int64) *queryLimiter {
	bytes := l.MaxFetchedChunkBytesPerQuery(workspace)
	day := (24 * time.Hour).Milliseconds()
	if days := (maxt - mint + day - 1) / day; days > 1 && bytes > 0 {
		bytes *= days
	}
	return &queryLimiter{
		maxSeries:  int64(l.MaxFetchedSeriesPerQuery(workspace)),
		maxChunks:  int64(l.MaxFetchedChunksPerQuery(workspace)),
		maxSamples: int64(l.MaxFetchedSamplesPerQuery(workspace)),
		maxBytes:   bytes,
	}
}

// addSeries counts one more distinct series.
func (q *queryLimiter) addSeries() error {
	if n := q.series.Add(1); q.maxSeries > 0 && n > q.maxSeries {
		return apierror.New(apierror.LimitExceeded, apierror.IDMaxSeriesPerQuery,
			"the query hit the max number of series limit (limit: %d series, -querier.max-fetched-series-per-query)", q.maxSeries)
	}
	return nil
}

// addChunks counts the chunks, samples and bytes of one fetched series.
func (q *queryLimiter) addChunks(chunks, samples, bytes int) error {
	if n := q.chunks.Add(int64(chunks)); q.maxChunks > 0 && n > q.maxChunks {
		return apierror.New(apierror.LimitExceeded, apierror.IDMaxChunksPerQuery,
			"the query hit the max number of chunks limit while fetching chunks from ingesters (limit: %d chunks, -querier.max-fetched-chunks-per-query)", q.maxChunks)
	}
	if n := q.samples.Add(int64(samples)); q.maxSamples > 0 && n > q.maxSamples {
		return apierror.New(apierror.LimitExceeded, apierror.IDMaxSamplesPerQuery,
			"the query hit the max number of samples limit (limit: %d samples, -querier.max-fetched-samples-per-query)", q.maxSamples)
	}
	if n := q.bytes.Add(int64(bytes)); q.maxBytes > 0 && n > q.maxBytes {
		return apierror.New(apierror.LimitExceeded, apierror.IDMaxChunkBytesPerQuery,
			"the query hit the aggregated chunks size limit (limit: %d bytes, -querier.max-fetched-chunk-bytes-per-query)", q.maxBytes)
	}
	return nil
}
