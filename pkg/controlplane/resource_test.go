package controlplane

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// TestResourceLifecycle: a workspace's resources are created, replaced,
// listed, tagged and deleted under the workspace's account only; retries
// with the same clientToken get their first answer; a late retry of
// another operation is refused; they go with their workspace.
// none checks nothing.
var none = Checks{Document: func([]byte) (int, error) { return 0, nil }}

func TestResourceLifecycle(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bkt := objstore.NewInMemBucket()
	s := testStore(bkt, &now)
	ctx := context.Background()
	const acct, other = "111111111111", "222222222222"
	ws, err := s.Create(ctx, acct, CreateInput{})
	require.NoError(t, err)
	k := RuleGroupsNamespaces
	data := []byte("groups: []\n")

	r, err := s.CreateResource(ctx, k, acct, ws.ID, "a/b?c", data, map[string]string{"t": "1"}, "tok-c", none)
	require.NoError(t, err, "any name is stored safely")
	require.Equal(t, int64(1), r.Revision)
	require.Equal(t, StatusActive, r.Status.Code)
	again, err := s.CreateResource(ctx, k, acct, ws.ID, "a/b?c", data, map[string]string{"t": "1"}, "tok-c", none)
	require.NoError(t, err, "a retried create")
	require.Equal(t, r.CreatedAt, again.CreatedAt)
	_, err = s.CreateResource(ctx, k, acct, ws.ID, "a/b?c", []byte("x"), nil, "tok-c", none)
	require.Equal(t, apierror.IDClientTokenReused, apierror.From(err).ID)
	_, err = s.CreateResource(ctx, k, acct, ws.ID, "a/b?c", data, nil, "", none)
	require.Equal(t, apierror.IDRuleGroupsNamespaceExists, apierror.From(err).ID)
	_, err = s.CreateResource(ctx, k, other, ws.ID, "x", data, nil, "", none)
	require.Equal(t, apierror.IDWorkspaceNotFound, apierror.From(err).ID, "another account's workspace")

	now = now.Add(time.Minute)
	put, err := s.PutResource(ctx, k, acct, ws.ID, "a/b?c", []byte("groups: [] # 2\n"), "tok-p", none)
	require.NoError(t, err)
	require.Equal(t, int64(2), put.Revision)
	require.True(t, put.ModifiedAt.After(put.CreatedAt))
	_, err = s.PutResource(ctx, k, acct, ws.ID, "a/b?c", []byte("groups: [] # 2\n"), "tok-p", none)
	require.NoError(t, err, "a retried put")
	_, err = s.PutResource(ctx, k, acct, ws.ID, "a/b?c", data, "tok-c", none)
	require.Equal(t, apierror.IDClientTokenReused, apierror.From(err).ID, "the create's token on a put")
	_, err = s.PutResource(ctx, k, acct, ws.ID, "missing", data, "", none)
	require.Equal(t, apierror.IDRuleGroupsNamespaceNotFound, apierror.From(err).ID)

	// Quotas count the workspace's other resources of the kind, from the
	// units recorded when each was stored.
	quota := Checks{
		Document: func(data []byte) (int, error) { return len(data), nil },
		MaxUnits: 20, MaxResources: 2,
		QuotaExceeded: func(what string, total, max int) error {
			return apierror.New(apierror.QuotaExceeded, apierror.IDRulesQuota, "%s %d > %d", what, total, max)
		},
	}
	_, err = s.PutResource(ctx, k, acct, ws.ID, "a/b?c", []byte("groups: [] # 2\n"), "", quota)
	require.NoError(t, err, "15 units")
	_, err = s.CreateResource(ctx, k, acct, ws.ID, "second", []byte("123456"), nil, "", quota)
	require.Equal(t, apierror.IDRulesQuota, apierror.From(err).ID)
	require.ErrorContains(t, err, "units 21 > 20")
	_, err = s.DescribeResource(ctx, k, acct, ws.ID, "second")
	require.Equal(t, apierror.NotFound, apierror.CauseOf(err), "nothing stored when a quota refuses")
	_, err = s.CreateResource(ctx, k, acct, ws.ID, "second", []byte("12345"), nil, "", quota)
	require.NoError(t, err, "exactly the quota")
	_, err = s.CreateResource(ctx, k, acct, ws.ID, "third", []byte(""), nil, "", quota)
	require.ErrorContains(t, err, "resources 3 > 2")
	require.NoError(t, s.DeleteResource(ctx, k, acct, ws.ID, "second", ""))
	_, err = s.PutResource(ctx, k, acct, ws.ID, "a/b?c", []byte("groups: [] # 2\n12345"), "", quota)
	require.NoError(t, err, "a deleted resource's units are given back")

	require.NoError(t, s.TagResourceByName(ctx, k, acct, ws.ID, "a/b?c", map[string]string{"u": "2"}, []string{"t"}))
	got, err := s.DescribeResource(ctx, k, acct, ws.ID, "a/b?c")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"u": "2"}, got.Tags)
	_, err = s.DescribeResource(ctx, k, other, ws.ID, "a/b?c")
	require.Equal(t, apierror.IDWorkspaceNotFound, apierror.From(err).ID)

	_, err = s.CreateResource(ctx, k, acct, ws.ID, "b", data, nil, "", none)
	require.NoError(t, err)
	list, err := s.ListResources(ctx, k, acct, ws.ID, "")
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "a/b?c", list[0].Name)
	require.Equal(t, "b", list[1].Name)
	list, err = s.ListResources(ctx, k, acct, ws.ID, "b")
	require.NoError(t, err)
	require.Len(t, list, 1)

	require.NoError(t, s.DeleteResource(ctx, k, acct, ws.ID, "b", "tok-d"))
	require.NoError(t, s.DeleteResource(ctx, k, acct, ws.ID, "b", "tok-d"), "a retried delete")
	require.Equal(t, apierror.IDRuleGroupsNamespaceNotFound, apierror.From(s.DeleteResource(ctx, k, acct, ws.ID, "b", "")).ID)
	require.Equal(t, apierror.IDClientTokenReused, apierror.From(s.DeleteResource(ctx, k, acct, ws.ID, "a/b?c", "tok-d")).ID,
		"a delete's token on another resource")

	require.NoError(t, s.Delete(ctx, acct, ws.ID))
	left := 0
	require.NoError(t, bkt.Iter(ctx, resourcesPrefix, func(string) error { left++; return nil }, objstore.WithRecursiveIter()))
	require.Zero(t, left, "the workspace's resources go with it")
}

// failingDelete fails the next delete of an object whose name ends so.
type failingDelete struct {
	objstore.Bucket
	suffix string
	fail   bool
}

func (b *failingDelete) Delete(ctx context.Context, name string) error {
	if b.fail && strings.HasSuffix(name, b.suffix) {
		b.fail = false
		return errors.New("connection reset")
	}
	return b.Bucket.Delete(ctx, name)
}

// TestResourceDeleteRetriedAfterAFailure: a delete whose object storage
// call failed, retried with its clientToken, deletes; the token is not
// "used by another operation".
func TestResourceDeleteRetriedAfterAFailure(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bkt := &failingDelete{Bucket: objstore.NewInMemBucket(), suffix: ".json"}
	s := testStore(bkt, &now)
	ctx := context.Background()
	const acct = "111111111111"
	ws, err := s.Create(ctx, acct, CreateInput{})
	require.NoError(t, err)
	k := RuleGroupsNamespaces
	_, err = s.CreateResource(ctx, k, acct, ws.ID, "ns", []byte("groups: []\n"), nil, "", none)
	require.NoError(t, err)
	bkt.fail = true
	require.Error(t, s.DeleteResource(ctx, k, acct, ws.ID, "ns", "tok-del"))
	require.NoError(t, s.DeleteResource(ctx, k, acct, ws.ID, "ns", "tok-del"), "the retry deletes")
	_, err = s.DescribeResource(ctx, k, acct, ws.ID, "ns")
	require.Equal(t, apierror.NotFound, apierror.CauseOf(err))
	require.NoError(t, s.DeleteResource(ctx, k, acct, ws.ID, "ns", "tok-del"), "and a retry after that is answered as the delete was")
}
