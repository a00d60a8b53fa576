package querier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/storage/bucket"
	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

// putMeta writes the meta.json of a block of ws covering [mint, maxt): what
// a finished upload leaves for a listing to find.
func putMeta(t *testing.T, bkt objstore.Bucket, ws string, mint, maxt int64) ulid.ULID {
	t.Helper()
	id := ulid.MustNew(uint64(maxt), bytes.NewReader(make([]byte, 16)))
	meta := vtsdb.Meta{BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: mint, MaxTime: maxt, Version: 1}, Vigil: vtsdb.Origin{Workspace: ws, Source: vtsdb.SourceIngester}}
	b, err := json.Marshal(meta)
	require.NoError(t, err)
	require.NoError(t, bucket.ForWorkspace(bkt, ws).Upload(context.Background(), path.Join(id.String(), vtsdb.MetaFilename), bytes.NewReader(b)))
	return id
}

// failingBucket fails every read while failing is set.
type failingBucket struct {
	objstore.Bucket
	failing bool
}

func (b *failingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if b.failing {
		return nil, errors.New("object storage is down")
	}
	return b.Bucket.Get(ctx, name)
}

func (b *failingBucket) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	if b.failing {
		return errors.New("object storage is down")
	}
	return b.Bucket.Iter(ctx, dir, f, opts...)
}

func TestMissingIndexListsTheBlocks(t *testing.T) {
	ctx := context.Background()
	bkt := &failingBucket{Bucket: objstore.NewInMemBucket()}
	now := time.Unix(1_800_000_000, 0)
	idx := newBucketIndexes(bkt, time.Minute, time.Hour, 3)
	idx.now = func() time.Time { return now }
	s := &Store{indexes: idx}

	blocks, described, err := s.blocksFor(ctx, "ws-1", 0, 1<<62)
	require.NoError(t, err)
	require.Empty(t, blocks, "a workspace with nothing uploaded has no blocks")
	require.Equal(t, now, described)

	b1 := putMeta(t, bkt, "ws-1", 0, 7_200_000)
	now = now.Add(time.Minute)
	blocks, described, err = s.blocksFor(ctx, "ws-1", 0, 1<<62)
	require.NoError(t, err)
	require.Equal(t, []ulid.ULID{b1}, blocks, "no compactor has indexed the block: the listing finds it")
	require.Equal(t, now, described)

	// A listing is cached as an index is, and serves while object storage
	// is down, up to the stale period.
	bkt.failing = true
	now = now.Add(30 * time.Minute)
	blocks, _, err = s.blocksFor(ctx, "ws-1", 0, 1<<62)
	require.NoError(t, err)
	require.Equal(t, []ulid.ULID{b1}, blocks)
	now = now.Add(time.Hour)
	_, _, err = s.blocksFor(ctx, "ws-1", 0, 1<<62)
	require.Equal(t, http.StatusServiceUnavailable, apierror.StatusOf(err), "neither an index nor a listing: never no blocks")
	require.ErrorContains(t, err, "(err-vigil-object-storage-unavailable)")
	bkt.failing = false

	// More blocks than a query lists: 503, not a partial answer.
	for i := int64(1); i <= 3; i++ {
		putMeta(t, bkt, "ws-1", i*7_200_000, (i+1)*7_200_000)
	}
	now = now.Add(time.Minute)
	_, _, err = s.blocksFor(ctx, "ws-1", 0, 1<<62)
	require.Equal(t, http.StatusServiceUnavailable, apierror.StatusOf(err))
	require.ErrorContains(t, err, "no bucket index yet and more blocks")
	require.ErrorContains(t, err, "(err-vigil-store-consistency-check-failed)")

	// Once the compactor writes the index, it is what counts.
	require.NoError(t, vtsdb.WriteIndex(ctx, bucket.ForWorkspace(bkt, "ws-1"), &vtsdb.Index{Version: 1, UpdatedAt: now.Unix(), Blocks: []vtsdb.Block{{ID: b1, MinTime: 0, MaxTime: 7_200_000}}}))
	now = now.Add(time.Minute)
	blocks, described, err = s.blocksFor(ctx, "ws-1", 0, 1<<62)
	require.NoError(t, err)
	require.Equal(t, []ulid.ULID{b1}, blocks)
	require.Equal(t, now.Add(-time.Minute), described, "the index describes the bucket as of its writing")
}

// TestIngestersCoverWhatTheIndexDoesNotDescribe: a query of a range older
// than -querier.query-ingesters-within reads the ingesters too when the
// bucket index is older than the window's start allows: blocks uploaded
// since it was written are still in the ingesters.
func TestIngestersCoverWhatTheIndexDoesNotDescribe(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	now := time.Unix(1_800_000_000, 0)
	cfg := Config{QueryIngestersWithin: 2 * time.Hour, QueryStoreAfter: time.Hour, BucketIndexUpdate: time.Minute, BucketIndexMaxStale: time.Hour, MaxBlocksWithoutIndex: 10}
	q := NewQueryable(cfg, nil, nil, NewStore(cfg, nil, nil, bkt), noLimits{})
	q.now = func() time.Time { return now }
	q.store.indexes.now = q.now
	mint, maxt := now.Add(-150*time.Minute).UnixMilli(), now.Add(-125*time.Minute).UnixMilli()

	fresh := q.newQuerier(mint, maxt)
	require.False(t, fresh.useIngesters, "older than the window: the store alone")
	require.NoError(t, vtsdb.WriteIndex(context.Background(), bucket.ForWorkspace(bkt, "ws-1"), &vtsdb.Index{Version: 1, UpdatedAt: now.Unix()}))
	require.NoError(t, fresh.plan(wsCtx()))
	require.False(t, fresh.useIngesters, "a fresh index describes everything uploaded")

	now = now.Add(20 * time.Minute) // the index is 20 minutes old (the cache is refreshed)
	mint, maxt = now.Add(-150*time.Minute).UnixMilli(), now.Add(-125*time.Minute).UnixMilli()
	stale := q.newQuerier(mint, maxt)
	require.False(t, stale.useIngesters)
	require.NoError(t, stale.plan(wsCtx()))
	require.True(t, stale.useIngesters, "the ingesters cover the 20 minutes the index does not")
	require.Equal(t, now.Add(-20*time.Minute-2*time.Hour).UnixMilli(), stale.ingMint)
}

func TestStorageErrorsAnswerTheirCausesStatus(t *testing.T) {
	unavailable := apierror.New(apierror.Unavailable, apierror.IDStoreConsistency, "no store-gateway served blocks")
	code, ok := statusOfCause(v1.ErrorInternal, promql.ErrStorage{Err: unavailable})
	require.True(t, ok)
	require.Equal(t, http.StatusServiceUnavailable, code)
	_, ok = statusOfCause(v1.ErrorExec, unavailable)
	require.False(t, ok, "an error of the query itself keeps Prometheus's status")
	_, ok = statusOfCause(v1.ErrorInternal, promql.ErrStorage{Err: errors.New("boom")})
	require.False(t, ok, "an error without a Vigil cause keeps Prometheus's 500")
}

// TestStoreRangeWithoutIndexOrListingAnswers503: through the HTTP API, a
// query of the store's range of a workspace with no bucket index and more
// blocks than a query lists is answered 503 with the error's ID, not 200.
func TestStoreRangeWithoutIndexOrListingAnswers503(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	for i := int64(0); i < 3; i++ {
		putMeta(t, bkt, "ws-1", i*7_200_000, (i+1)*7_200_000)
	}
	cfg := Config{Timeout: time.Minute, MaxSamples: 1000, LookbackDelta: 5 * time.Minute, MaxConcurrent: 1, DefaultEvalInterval: time.Minute,
		QueryIngestersWithin: time.Hour, QueryStoreAfter: 0, BucketIndexUpdate: time.Minute, BucketIndexMaxStale: time.Hour, MaxBlocksWithoutIndex: 2}
	q := NewQueryable(cfg, fakeRing{}, nil, NewStore(cfg, nil, nil, bkt), noLimits{})
	h := NewHandler(cfg, NewEngine(cfg, prometheus.NewRegistry(), log.NewNopLogger()), q, guardLimits{}, nil, prometheus.NewRegistry(), log.NewNopLogger())
	end := time.Now().Add(-2 * time.Hour)
	r := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/api/v1/query_range?query=up&start=%d&end=%d&step=60", end.Add(-time.Hour).Unix(), end.Unix()), nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r.WithContext(wsCtx()))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), `"status":"error"`)
	require.Contains(t, rec.Body.String(), "(err-vigil-store-consistency-check-failed)")
}
