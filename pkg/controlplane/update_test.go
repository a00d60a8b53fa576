package controlplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// TestPolicyClientTokens: a retried policy operation gets its first answer,
// and a late retry never undoes a later change.
func TestPolicyClientTokens(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := testStore(objstore.NewInMemBucket(), &now)
	ctx := context.Background()
	const acct = "111111111111"
	ws, err := s.Create(ctx, acct, CreateInput{})
	require.NoError(t, err)
	doc := func(grantee string) string {
		return fmt.Sprintf(`{"Statement":{"Effect":"Allow","Principal":{"AWS":%q},"Action":"aps:RemoteWrite","Resource":%q}}`, grantee, ws.ARN)
	}
	current := func() string {
		p, err := s.Policy(ctx, acct, ws.ID)
		if apierror.CauseOf(err) == apierror.NotFound {
			return ""
		}
		require.NoError(t, err)
		return p.Document
	}

	revA, err := s.PutPolicy(ctx, acct, ws.ID, doc("222222222222"), "", "tok-a")
	require.NoError(t, err)
	again, err := s.PutPolicy(ctx, acct, ws.ID, doc("222222222222"), "", "tok-a")
	require.NoError(t, err)
	require.Equal(t, revA, again, "a retry gets the first call's revision")
	_, err = s.PutPolicy(ctx, acct, ws.ID, doc("333333333333"), "", "tok-b")
	require.NoError(t, err)

	_, err = s.PutPolicy(ctx, acct, ws.ID, doc("222222222222"), "", "tok-a")
	require.Equal(t, apierror.Conflict, apierror.CauseOf(err), "a late retry must not undo the later put")
	require.Equal(t, doc("333333333333"), current())

	require.NoError(t, s.DeletePolicy(ctx, acct, ws.ID, "", "tok-d"))
	require.NoError(t, s.DeletePolicy(ctx, acct, ws.ID, "", "tok-d"), "a retried delete succeeds")
	_, err = s.PutPolicy(ctx, acct, ws.ID, doc("333333333333"), "", "tok-b")
	require.Equal(t, apierror.Conflict, apierror.CauseOf(err), "a late retry must not bring a revoked policy back")
	require.Empty(t, current())

	_, err = s.PutPolicy(ctx, acct, ws.ID, doc("444444444444"), "", "tok-e")
	require.NoError(t, err)
	err = s.DeletePolicy(ctx, acct, ws.ID, "", "tok-d")
	require.Equal(t, apierror.Conflict, apierror.CauseOf(err), "an old delete's retry must not silently keep or remove the new policy")
	require.Equal(t, doc("444444444444"), current())

	// Tokens expire after a day.
	now = now.Add(25 * time.Hour)
	require.NoError(t, s.DeletePolicy(ctx, acct, ws.ID, "", "tok-d"))
	require.Empty(t, current())
}
