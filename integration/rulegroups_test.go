package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/controlplane"
)

const contractRules = `groups:
  - name: node
    interval: 1m
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: InstanceDown
        expr: up == 0
        for: 5m
        labels: {severity: page}
        annotations: {summary: "{{ $labels.instance }} is down"}
`

// recordingRules returns a rules file of n recording rules in one group.
func recordingRules(n int) string {
	var b strings.Builder
	b.WriteString("groups:\n  - name: many\n    rules:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "      - record: r_%d\n        expr: up\n", i)
	}
	return b.String()
}

// TestRuleGroupsNamespacesContract drives the five rule groups namespace
// operations, and tagging by the namespace's ARN, through the AWS SDK for
// Go v2 AMP client, with each typed error, pagination and idempotency.
func TestRuleGroupsNamespacesContract(t *testing.T) {
	v, _ := startSigV4(t)
	ctx := context.Background()
	c := keyAdmin.amp(v.BaseURL())
	created, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("rules")})
	require.NoError(t, err)
	ws := created.WorkspaceId

	// None yet.
	var nf *types.ResourceNotFoundException
	_, err = c.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("node")})
	require.ErrorAs(t, err, &nf)
	require.Equal(t, "RuleGroupsNamespace", *nf.ResourceType)
	require.Equal(t, "node", *nf.ResourceId)
	_, err = c.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("node"), Data: []byte(contractRules)})
	require.ErrorAs(t, err, &nf)
	_, err = c.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("node")})
	require.ErrorAs(t, err, &nf)
	_, err = c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String("ws-00000000-0000-4000-8000-000000000000"), Name: aws.String("node"), Data: []byte(contractRules)})
	require.ErrorAs(t, err, &nf, "an unknown workspace")
	list, err := c.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: ws})
	require.NoError(t, err)
	require.Empty(t, list.RuleGroupsNamespaces)

	// Create, with a retry of the same call.
	in := &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("node"), Data: []byte(contractRules),
		Tags: map[string]string{"team": "sre"}, ClientToken: aws.String("rg-token-1")}
	out, err := c.CreateRuleGroupsNamespace(ctx, in)
	require.NoError(t, err)
	require.Equal(t, types.RuleGroupsNamespaceStatusCodeCreating, out.Status.StatusCode)
	require.Equal(t, "node", *out.Name)
	arn := "arn:aws:aps:us-east-1:" + accountOf(t, *created.Arn) + ":rulegroupsnamespace/" + *ws + "/node"
	require.Equal(t, arn, *out.Arn)
	require.Equal(t, map[string]string{"team": "sre"}, out.Tags)
	again, err := c.CreateRuleGroupsNamespace(ctx, in)
	require.NoError(t, err, "a retry with the same clientToken and parameters")
	require.Equal(t, arn, *again.Arn)
	in2 := *in
	in2.Data = []byte(recordingRules(1))
	_, err = c.CreateRuleGroupsNamespace(ctx, &in2)
	var conflict *types.ConflictException
	require.ErrorAs(t, err, &conflict, "the token again with other parameters")
	in2.ClientToken = nil
	_, err = c.CreateRuleGroupsNamespace(ctx, &in2)
	require.ErrorAs(t, err, &conflict, "the name again")
	require.Equal(t, "node", *conflict.ResourceId)

	desc, err := c.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("node")})
	require.NoError(t, err)
	ns := desc.RuleGroupsNamespace
	require.Equal(t, types.RuleGroupsNamespaceStatusCodeActive, ns.Status.StatusCode)
	require.Equal(t, contractRules, string(ns.Data))
	require.Equal(t, arn, *ns.Arn)
	require.Equal(t, map[string]string{"team": "sre"}, ns.Tags)
	require.False(t, ns.CreatedAt.IsZero())
	require.False(t, ns.ModifiedAt.Before(*ns.CreatedAt))

	// Put replaces the rules.
	put, err := c.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("node"), Data: []byte(recordingRules(3))})
	require.NoError(t, err)
	require.Equal(t, types.RuleGroupsNamespaceStatusCodeUpdating, put.Status.StatusCode)
	desc, err = c.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("node")})
	require.NoError(t, err)
	require.Equal(t, recordingRules(3), string(desc.RuleGroupsNamespace.Data))
	require.Equal(t, types.RuleGroupsNamespaceStatusCodeActive, desc.RuleGroupsNamespace.Status.StatusCode)

	// Tags by the namespace's ARN.
	_, err = c.TagResource(ctx, &amp.TagResourceInput{ResourceArn: aws.String(arn), Tags: map[string]string{"tier": "gold"}})
	require.NoError(t, err)
	_, err = c.UntagResource(ctx, &amp.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"team"}})
	require.NoError(t, err)
	tags, err := c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"tier": "gold"}, tags.Tags)
	wsTags, err := c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: created.Arn})
	require.NoError(t, err)
	require.Empty(t, wsTags.Tags, "the workspace's tags are its own")

	// Invalid rules files, and AMP's limits, refused with nothing stored.
	for _, tc := range []struct {
		name, data string
		quota      bool
	}{
		{"not YAML", "groups: [", false},
		{"bad PromQL", "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: sum(\n", false},
		{"no record or alert", "groups:\n  - name: g\n    rules:\n      - expr: up\n", false},
		{"interval under 30 s", "groups:\n  - name: g\n    interval: 10s\n    rules:\n      - record: r\n        expr: up\n", false},
		{"over 2,000 rules in the workspace", recordingRules(1998), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("bad"), Data: []byte(tc.data)})
			if tc.quota {
				var q *types.ServiceQuotaExceededException
				require.ErrorAs(t, err, &q)
			} else {
				var ve *types.ValidationException
				require.ErrorAs(t, err, &ve)
				require.Equal(t, "data", *ve.FieldList[0].Name)
			}
			_, err = c.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("bad")})
			require.ErrorAs(t, err, &nf)
		})
	}
	// Names: AMP's 128 characters, any of them, on the filesystem
	// bucket; none that its ARN could not hold.
	long := "a" + strings.Repeat("é", 127)
	_, err = c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(long), Data: []byte("groups: []\n")})
	require.NoError(t, err, "128 characters of 2 bytes each")
	_, err = c.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(long)})
	require.NoError(t, err)
	_, err = c.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(long)})
	require.NoError(t, err)
	for _, bad := range []string{"what?now", "a*", "a" + strings.Repeat("b", 128)} {
		_, err = c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(bad), Data: []byte("groups: []\n")})
		var ve *types.ValidationException
		require.ErrorAs(t, err, &ve, bad)
		require.Equal(t, "name", *ve.FieldList[0].Name)
	}
	// An expression Prometheus's parser would take minutes over is refused
	// before it is parsed.
	hostile := "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: " + strings.Repeat("up + ", 100_000) + "up\n"
	started := time.Now()
	_, err = c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("hostile"), Data: []byte(hostile)})
	var ve *types.ValidationException
	require.ErrorAs(t, err, &ve)
	require.Contains(t, *ve.Message, "binary operators")
	require.Less(t, time.Since(started), 5*time.Second)
	// So is one an alert's template would query at every evaluation.
	hostile = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations:\n          s: '{{ query \"" + strings.Repeat("up + ", 100_000) + "up\" }}'\n"
	started = time.Now()
	_, err = c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("hostile"), Data: []byte(hostile)})
	require.ErrorAs(t, err, &ve)
	require.Contains(t, *ve.Message, "binary operators")
	require.Less(t, time.Since(started), 5*time.Second)

	_, err = c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("fits"), Data: []byte(recordingRules(1997))})
	require.NoError(t, err, "3 + 1,997 rules: exactly the quota")

	// Listing: by name, a prefix, pages.
	for _, n := range []string{"a-1", "a-2", "b-1"} {
		_, err := c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(n), Data: []byte("groups: []\n")})
		require.NoError(t, err)
	}
	var names []string
	p := amp.NewListRuleGroupsNamespacesPaginator(c, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: ws, MaxResults: aws.Int32(2)})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		pages++
		for _, s := range page.RuleGroupsNamespaces {
			names = append(names, *s.Name)
			require.Equal(t, types.RuleGroupsNamespaceStatusCodeActive, s.Status.StatusCode)
		}
	}
	require.Equal(t, []string{"a-1", "a-2", "b-1", "fits", "node"}, names)
	require.Equal(t, 3, pages)
	list, err = c.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: ws, Name: aws.String("a-")})
	require.NoError(t, err)
	require.Len(t, list.RuleGroupsNamespaces, 2)

	// IAM: the query-only managed policy may list but not change them.
	_, err = keyReader.amp(v.BaseURL()).DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("node")})
	var denied *types.AccessDeniedException
	require.ErrorAs(t, err, &denied)
	require.Contains(t, *denied.Message, "aps:DeleteRuleGroupsNamespace")
	require.Contains(t, *denied.Message, arn, "the action applies to the namespace")

	// Another account gets what it gets for a namespace that does not
	// exist.
	other := keyOther.amp(v.BaseURL())
	for name, call := range map[string]func(name string) error{
		"describe": func(n string) error {
			_, err := other.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(n)})
			return err
		},
		"put": func(n string) error {
			_, err := other.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(n), Data: []byte(contractRules)})
			return err
		},
		"delete": func(n string) error {
			_, err := other.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(n)})
			return err
		},
		"list": func(string) error {
			_, err := other.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: ws})
			return err
		},
		"create": func(n string) error {
			_, err := other.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(n), Data: []byte(contractRules)})
			return err
		},
	} {
		errExisting := call("node")
		require.ErrorAs(t, errExisting, &nf, name)
		require.NotContains(t, errExisting.Error(), "RuleGroupsNamespace node", name)
	}
	_, err = other.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	require.ErrorAs(t, err, &nf)
	desc, err = c.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("node")})
	require.NoError(t, err)
	require.Equal(t, recordingRules(3), string(desc.RuleGroupsNamespace.Data), "unchanged by the other account")

	// Delete, with a retry.
	del := &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("node"), ClientToken: aws.String("rg-token-del")}
	_, err = c.DeleteRuleGroupsNamespace(ctx, del)
	require.NoError(t, err)
	_, err = c.DeleteRuleGroupsNamespace(ctx, del)
	require.NoError(t, err, "a retried delete")
	_, err = c.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("node")})
	require.ErrorAs(t, err, &nf)

	// Deleting the workspace deletes its namespaces: a new workspace sees
	// none, and the old one's are gone from storage.
	_, err = c.DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: ws})
	require.NoError(t, err)
	_, err = c.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: ws})
	require.ErrorAs(t, err, &nf)
	left, err := v.Workspaces.Resources(ctx, controlplane.RuleGroupsNamespaces, *ws)
	require.NoError(t, err)
	require.Empty(t, left)
}

// accountOf returns the account of an ARN.
func accountOf(t *testing.T, arn string) string {
	t.Helper()
	parts := strings.Split(arn, ":")
	require.Len(t, parts, 6)
	return parts[4]
}

// TestRuleGroupsNamespacesTypedErrors: the typed errors of the namespace
// operations that TestRuleGroupsNamespacesContract does not reach: the
// namespaces quota, invalid list parameters and names, AccessDenied on
// each operation for a caller without the action, and throttling.
func TestRuleGroupsNamespacesTypedErrors(t *testing.T) {
	v, _ := startSigV4(t, "-ruler.max-rule-groups-namespaces-per-workspace=2", "-auth.control-plane-rate-limit=10")
	ctx := context.Background()
	c := keyAdmin.amp(v.BaseURL())
	created, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	ws := created.WorkspaceId
	for _, n := range []string{"a", "b"} {
		_, err := c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(n), Data: []byte(contractRules)})
		require.NoError(t, err)
	}
	_, err = c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("c"), Data: []byte("groups: []\n")})
	var quota *types.ServiceQuotaExceededException
	require.ErrorAs(t, err, &quota, "a third namespace past a quota of two")

	for name, call := range map[string]func() error{
		"maxResults 0": func() error {
			_, err := c.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: ws, MaxResults: aws.Int32(0)})
			return err
		},
		"maxResults 1001": func() error {
			_, err := c.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: ws, MaxResults: aws.Int32(1001)})
			return err
		},
		"nextToken": func() error {
			_, err := c.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: ws, NextToken: aws.String("not a token!")})
			return err
		},
		"name": func() error {
			_, err := c.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String(strings.Repeat("n", 129))})
			return err
		},
	} {
		var ve *types.ValidationException
		require.ErrorAs(t, call(), &ve, name)
	}

	// The remote-write-only user may do none of the five.
	w := keyWriter.amp(v.BaseURL())
	for op, call := range map[string]func() error{
		"CreateRuleGroupsNamespace": func() error {
			_, err := w.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("w"), Data: []byte(contractRules)})
			return err
		},
		"PutRuleGroupsNamespace": func() error {
			_, err := w.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("a"), Data: []byte(contractRules)})
			return err
		},
		"DescribeRuleGroupsNamespace": func() error {
			_, err := w.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("a")})
			return err
		},
		"ListRuleGroupsNamespaces": func() error {
			_, err := w.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: ws})
			return err
		},
		"DeleteRuleGroupsNamespace": func() error {
			_, err := w.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("a")})
			return err
		},
	} {
		var denied *types.AccessDeniedException
		require.ErrorAs(t, call(), &denied, op)
		require.Contains(t, *denied.Message, "aps:"+op)
	}

	// Past 10 operations per second, the account is throttled.
	throttled := countThrottled(t, 30, func() error {
		_, err := c.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("a")}, noRetry)
		return err
	})
	require.GreaterOrEqual(t, throttled, 10, "30 calls at once against a bucket of 10")
	desc, err := c.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: ws, Name: aws.String("a")})
	require.NoError(t, err, "the SDK's retries get through")
	require.Equal(t, contractRules, string(desc.RuleGroupsNamespace.Data), "nothing the refused calls sent changed it")
}
