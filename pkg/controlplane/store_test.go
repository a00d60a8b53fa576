package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

func testStore(bkt objstore.Bucket, now *time.Time) *Store {
	s := NewStore(Config{Region: "eu-west-1", MaxWorkspacesPerAccount: 2, StatusCacheTTL: 10 * time.Second}, bkt)
	s.now = func() time.Time { return *now }
	return s
}

func TestCreateListDeleteAndQuota(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := testStore(objstore.NewInMemBucket(), &now)
	ctx := context.Background()

	a, err := s.Create(ctx, "111111111111", CreateInput{Alias: "prod"})
	require.NoError(t, err)
	require.Equal(t, "arn:aws:aps:eu-west-1:111111111111:workspace/"+a.ID, a.ARN)
	now = now.Add(time.Second)
	b, err := s.Create(ctx, "111111111111", CreateInput{Alias: "staging"})
	require.NoError(t, err)
	_, err = s.Create(ctx, "222222222222", CreateInput{})
	require.NoError(t, err, "the quota is per account")

	_, err = s.Create(ctx, "111111111111", CreateInput{})
	require.Equal(t, apierror.QuotaExceeded, apierror.CauseOf(err))
	require.ErrorContains(t, err, "Limit exceeded. Maximum workspaces per account.")

	list, err := s.List(ctx, "111111111111", "")
	require.NoError(t, err)
	require.Equal(t, []string{a.ID, b.ID}, []string{list[0].ID, list[1].ID})
	list, err = s.List(ctx, "111111111111", "stag")
	require.NoError(t, err)
	require.Len(t, list, 1)

	_, err = s.Describe(ctx, "222222222222", a.ID)
	require.Equal(t, apierror.NotFound, apierror.CauseOf(err), "another account's workspace is not visible")

	require.NoError(t, s.Delete(ctx, "111111111111", a.ID))
	require.Equal(t, apierror.NotFound, apierror.CauseOf(s.CheckActive(ctx, a.ID)))
	require.Equal(t, apierror.NotFound, apierror.CauseOf(s.Delete(ctx, "111111111111", a.ID)))
}

func TestCheckActiveCachesAcrossReplicas(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bkt := objstore.NewInMemBucket()
	writer, reader := testStore(bkt, &now), testStore(bkt, &now)
	ctx := context.Background()

	// A workspace created through another replica is found in the bucket.
	require.Equal(t, apierror.NotFound, apierror.CauseOf(reader.CheckActive(ctx, "ws-x")))
	ws, err := writer.Create(ctx, "111111111111", CreateInput{})
	require.NoError(t, err)
	require.NoError(t, reader.CheckActive(ctx, ws.ID))

	// Deleted through another replica: still served from cache until the TTL.
	require.NoError(t, writer.Delete(ctx, "111111111111", ws.ID))
	require.NoError(t, reader.CheckActive(ctx, ws.ID))
	now = now.Add(11 * time.Second)
	require.Equal(t, apierror.NotFound, apierror.CauseOf(reader.CheckActive(ctx, ws.ID)))

	// IDs that are not valid object names never reach the bucket.
	require.Equal(t, apierror.NotFound, apierror.CauseOf(reader.CheckActive(ctx, "../control")))
}

func TestUnknownIDsDoNotGrowTheCacheWithoutBound(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := testStore(objstore.NewInMemBucket(), &now)
	for i := 0; i < maxMissing+500; i++ {
		_ = s.CheckActive(context.Background(), fmt.Sprintf("ws-unknown-%d", i))
	}
	require.LessOrEqual(t, len(s.cache), maxMissing)
}

// unreadable fails every read while down is set: object storage out of reach.
type unreadable struct {
	objstore.Bucket
	down bool
}

func (b *unreadable) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if b.down {
		return nil, errors.New("connection refused")
	}
	return b.Bucket.Get(ctx, name)
}

// TestCheckActiveRidesOutAnObjectStorageOutage: a known workspace stays
// ACTIVE while object storage cannot be read (before the fix, every write
// got 500 once the status cache expired); an unknown one gets 503.
func TestCheckActiveRidesOutAnObjectStorageOutage(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bkt := &unreadable{Bucket: objstore.NewInMemBucket()}
	s := testStore(bkt, &now)
	ctx := context.Background()
	a, err := s.Create(ctx, "111111111111", CreateInput{})
	require.NoError(t, err)
	b, err := s.Create(ctx, "111111111111", CreateInput{})
	require.NoError(t, err)
	other := testStore(bkt, &now) // a replica that never read b
	require.NoError(t, other.CheckActive(ctx, a.ID))

	bkt.down = true
	now = now.Add(10 * time.Minute)
	require.NoError(t, s.CheckActive(ctx, a.ID))
	require.NoError(t, other.CheckActive(ctx, a.ID))
	err = other.CheckActive(ctx, b.ID)
	require.Equal(t, http.StatusServiceUnavailable, apierror.StatusOf(err))
	require.ErrorContains(t, err, "(err-vigil-object-storage-unavailable)")

	// Not forever: past maxStaleStatus the sender is told to retry.
	now = now.Add(maxStaleStatus)
	require.Equal(t, http.StatusServiceUnavailable, apierror.StatusOf(s.CheckActive(ctx, a.ID)))

	bkt.down = false
	require.NoError(t, other.CheckActive(ctx, b.ID))
	require.NoError(t, s.CheckActive(ctx, a.ID))
}
