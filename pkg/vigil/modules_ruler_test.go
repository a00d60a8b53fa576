package vigil

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/controlplane"
)

// TestRulesFilesSeeANamespaceCreatedAgain: a namespace deleted and created
// again between two reads, with other rules, is read again, though its
// revision starts over.
func TestRulesFilesSeeANamespaceCreatedAgain(t *testing.T) {
	store := controlplane.NewStore(controlplane.Config{Region: "us-east-1", MaxWorkspacesPerAccount: 5, StatusCacheTTL: time.Second}, objstore.NewInMemBucket())
	ctx := context.Background()
	const acct = "111111111111"
	ws, err := store.Create(ctx, acct, controlplane.CreateInput{})
	require.NoError(t, err)
	noChecks := controlplane.Checks{Document: func([]byte) (int, error) { return 0, nil }}
	_, err = store.CreateResource(ctx, controlplane.RuleGroupsNamespaces, acct, ws.ID, "ns", []byte("old"), nil, "", noChecks)
	require.NoError(t, err)
	files := newRulesFiles(store)
	got, err := files.RulesFiles(ctx)
	require.NoError(t, err)
	require.Equal(t, "old", string(got[ws.ID][0].Data))

	require.NoError(t, store.DeleteResource(ctx, controlplane.RuleGroupsNamespaces, acct, ws.ID, "ns", ""))
	time.Sleep(time.Millisecond)
	_, err = store.CreateResource(ctx, controlplane.RuleGroupsNamespaces, acct, ws.ID, "ns", []byte("new"), nil, "", noChecks)
	require.NoError(t, err)
	got, err = files.RulesFiles(ctx)
	require.NoError(t, err)
	require.Equal(t, "new", string(got[ws.ID][0].Data))
}
