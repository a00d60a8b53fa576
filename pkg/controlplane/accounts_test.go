package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// TestConcurrentCreatesKeepTheQuota: before the fix, 20 concurrent creates
// with a quota of 2 made 3 or more workspaces.
func TestConcurrentCreatesKeepTheQuota(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := testStore(objstore.NewInMemBucket(), &now)
	var created, refused atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Create(context.Background(), "111111111111", CreateInput{})
			switch apierror.CauseOf(err) {
			case apierror.QuotaExceeded:
				refused.Add(1)
			case apierror.Internal:
				if err == nil {
					created.Add(1)
				} else {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 2, created.Load())
	require.EqualValues(t, 18, refused.Load())
	list, err := s.List(context.Background(), "111111111111", "")
	require.NoError(t, err)
	require.Len(t, list, 2)
}

// TestClientTokenMakesCreateIdempotent: an SDK retry (same token, same
// parameters) gets the first call's workspace; the token with other
// parameters is a conflict.
func TestClientTokenMakesCreateIdempotent(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := testStore(objstore.NewInMemBucket(), &now)
	ctx := context.Background()
	in := CreateInput{Alias: "prod", Tags: map[string]string{"team": "a"}, ClientToken: "tok-1"}
	first, err := s.Create(ctx, "111111111111", in)
	require.NoError(t, err)
	again, err := s.Create(ctx, "111111111111", in)
	require.NoError(t, err)
	require.Equal(t, first.ID, again.ID)

	_, err = s.Create(ctx, "111111111111", CreateInput{Alias: "other", ClientToken: "tok-1"})
	require.Equal(t, apierror.Conflict, apierror.CauseOf(err))
	require.ErrorContains(t, err, "(err-vigil-client-token-reused)")

	second, err := s.Create(ctx, "111111111111", CreateInput{Alias: "prod", ClientToken: "tok-2"})
	require.NoError(t, err)
	require.NotEqual(t, first.ID, second.ID)
	_, err = s.Create(ctx, "111111111111", CreateInput{Alias: "prod", ClientToken: "tok-3"})
	require.Equal(t, apierror.QuotaExceeded, apierror.CauseOf(err))
	// The retry of a create that succeeded is not refused by the quota.
	again, err = s.Create(ctx, "111111111111", in)
	require.NoError(t, err)
	require.Equal(t, first.ID, again.ID)

	// Once the token has expired it is a new create.
	now = now.Add(clientTokenTTL + time.Minute)
	require.NoError(t, s.Delete(ctx, "111111111111", first.ID))
	fresh, err := s.Create(ctx, "111111111111", in)
	require.NoError(t, err)
	require.NotEqual(t, first.ID, fresh.ID)
}

// countingBucket counts the objects read.
type countingBucket struct {
	objstore.Bucket
	gets, iters atomic.Int32
}

func (b *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.gets.Add(1)
	return b.Bucket.Get(ctx, name)
}

func (b *countingBucket) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	b.iters.Add(1)
	return b.Bucket.Iter(ctx, dir, f, opts...)
}

// TestListReadsOnlyTheAccount: List reads the account's index and its own
// documents, not every account's.
func TestListReadsOnlyTheAccount(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bkt := &countingBucket{Bucket: objstore.NewInMemBucket()}
	s := testStore(bkt, &now)
	s.cfg.MaxWorkspacesPerAccount = 100
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		_, err := s.Create(ctx, "222222222222", CreateInput{})
		require.NoError(t, err)
	}
	_, err := s.Create(ctx, "111111111111", CreateInput{})
	require.NoError(t, err)

	reader := testStore(bkt, &now) // a replica with an empty cache
	bkt.gets.Store(0)
	bkt.iters.Store(0)
	list, err := reader.List(ctx, "111111111111", "")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.EqualValues(t, 2, bkt.gets.Load(), "the index and the one workspace")
	require.Zero(t, bkt.iters.Load())
}

// TestIndexIsBuiltForOlderData: workspaces written before account indexes
// existed are found, and count against the quota; once migrated, an account
// without an index costs no scan of the bucket.
func TestIndexIsBuiltForOlderData(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bkt := &countingBucket{Bucket: objstore.NewInMemBucket()}
	old := &Workspace{ID: "ws-old", Account: "111111111111", Status: StatusActive, CreatedAt: now}
	body, _ := json.Marshal(old)
	require.NoError(t, bkt.Upload(context.Background(), objectName(old.ID), bytes.NewReader(body)))
	s := testStore(bkt, &now)
	require.NoError(t, s.MigrateIndexes(context.Background()))
	bkt.iters.Store(0)
	list, err := testStore(bkt, &now).List(context.Background(), "222222222222", "")
	require.NoError(t, err)
	require.Empty(t, list)
	require.Zero(t, bkt.iters.Load(), "an account without workspaces is not a scan of the bucket")
	list, err = s.List(context.Background(), "111111111111", "")
	require.NoError(t, err)
	require.Len(t, list, 1)
	_, err = s.Create(context.Background(), "111111111111", CreateInput{})
	require.NoError(t, err)
	_, err = s.Create(context.Background(), "111111111111", CreateInput{})
	require.Equal(t, apierror.QuotaExceeded, apierror.CauseOf(err), "the older workspace counts")
}

// slowBucket holds reads of workspace documents until release is closed.
type slowBucket struct {
	objstore.Bucket
	reading chan struct{}
	release chan struct{}
	hold    atomic.Bool
}

func (b *slowBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if b.hold.Load() && strings.HasPrefix(name, workspacesPrefix) {
		r, err := b.Bucket.Get(ctx, name) // read before the delete...
		b.reading <- struct{}{}
		<-b.release // ...and answer after it
		return r, err
	}
	return b.Bucket.Get(ctx, name)
}

// TestDeleteIsNotUndoneByAnInflightLookup: a status lookup that read the
// workspace before it was deleted, and returns after, must not cache it as
// ACTIVE again.
func TestDeleteIsNotUndoneByAnInflightLookup(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bkt := &slowBucket{Bucket: objstore.NewInMemBucket(), reading: make(chan struct{}), release: make(chan struct{})}
	s := testStore(bkt, &now)
	ctx := context.Background()
	ws, err := s.Create(ctx, "111111111111", CreateInput{})
	require.NoError(t, err)
	now = now.Add(time.Minute) // the cached status is stale: the next check reads

	bkt.hold.Store(true)
	done := make(chan error)
	go func() { done <- s.CheckActive(ctx, ws.ID) }()
	<-bkt.reading
	bkt.hold.Store(false)
	require.NoError(t, s.Delete(ctx, "111111111111", ws.ID))
	close(bkt.release)
	<-done
	require.Equal(t, apierror.NotFound, apierror.CauseOf(s.CheckActive(ctx, ws.ID)), "the deleted workspace came back")
}

// failingDocs fails the uploads of workspace documents while fail is set.
type failingDocs struct {
	objstore.Bucket
	fail atomic.Bool
}

func (b *failingDocs) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	if b.fail.Load() && strings.HasPrefix(name, workspacesPrefix) {
		return errors.New("503 slow down")
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

// TestClientTokenRetryFinishesAFailedCreate: a create that failed after its
// index entry was written is finished by the SDK's retry (same token), not
// answered with a workspace that does not exist.
func TestClientTokenRetryFinishesAFailedCreate(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bkt := &failingDocs{Bucket: objstore.NewInMemBucket()}
	s := testStore(bkt, &now)
	ctx := context.Background()
	in := CreateInput{Alias: "prod", ClientToken: "tok"}
	bkt.fail.Store(true)
	_, err := s.Create(ctx, "111111111111", in)
	require.Error(t, err)
	bkt.fail.Store(false)
	ws, err := s.Create(ctx, "111111111111", in)
	require.NoError(t, err)
	got, err := s.Describe(ctx, "111111111111", ws.ID)
	require.NoError(t, err, "the retry's workspace exists")
	require.Equal(t, "prod", got.Alias)
	require.NoError(t, s.CheckActive(ctx, ws.ID))
	list, err := s.List(ctx, "111111111111", "")
	require.NoError(t, err)
	require.Len(t, list, 1)
}

// TestIndexStaysSmall: SDKs send a token with every create; the index keeps
// the most recent maxClientTokens only, and never stores whole workspaces.
func TestIndexStaysSmall(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bkt := objstore.NewInMemBucket()
	s := testStore(bkt, &now)
	s.maxTokens = 20
	ctx := context.Background()
	tags := map[string]string{}
	for i := 0; i < 50; i++ {
		tags[fmt.Sprintf("%0128d", i)] = strings.Repeat("v", 256)
	}
	for i := 0; i < s.maxTokens+10; i++ {
		now = now.Add(time.Second)
		ws, err := s.Create(ctx, "111111111111", CreateInput{Tags: tags, ClientToken: fmt.Sprint("tok-", i)})
		require.NoError(t, err)
		require.NoError(t, s.Delete(ctx, "111111111111", ws.ID))
	}
	idx, err := s.index(ctx, "111111111111")
	require.NoError(t, err)
	require.Len(t, idx.ClientTokens, s.maxTokens)
	require.NotContains(t, idx.ClientTokens, "tok-0", "the oldest tokens go first")
	attrs, err := bkt.Attributes(ctx, indexName("111111111111"))
	require.NoError(t, err)
	// A token takes well under 256 bytes, whatever the workspace's tags.
	require.Less(t, attrs.Size, int64(s.maxTokens*256))
}
