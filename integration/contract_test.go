package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/vigil"
)

// iamYAML holds the identities of the contract and isolation suites: two
// accounts, users with managed and inline policies.
const iamYAML = `
accounts:
  - id: "111122223333"
    users:
      - name: admin
        access_keys: [{id: AKIAEXAMPLEADMINAAA, secret: admin-secret}]
        managed_policies: [AmazonPrometheusFullAccess]
      - name: writer
        access_keys: [{id: AKIAEXAMPLEWRITERAA, secret: writer-secret}]
        managed_policies: [AmazonPrometheusRemoteWriteAccess]
      - name: reader
        access_keys: [{id: AKIAEXAMPLEREADERAA, secret: reader-secret}]
        managed_policies: [AmazonPrometheusQueryAccess]
      - name: red
        access_keys: [{id: AKIAEXAMPLEREDTEAMA, secret: red-secret}]
        policies:
          - Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: ["aps:*"]
                Resource: "*"
                Condition: {StringEquals: {"aws:ResourceTag/team": red}}
              - Effect: Allow
                Action: ["aps:CreateWorkspace"]
                Resource: "*"
                Condition: {StringEquals: {"aws:RequestTag/team": red}, "ForAllValues:StringEquals": {"aws:TagKeys": [team, env]}}
              - Effect: Allow
                Action: ["aps:ListWorkspaces"]
                Resource: "*"
              - Effect: Deny
                Action: ["aps:DeleteWorkspace", "aps:UntagResource"]
                Resource: "*"
      - name: nothing
        access_keys: [{id: AKIAEXAMPLENOTHING, secret: nothing-secret}]
      - name: rules
        access_keys: [{id: AKIAEXAMPLERULESAAA, secret: rules-secret}]
        policies:
          - Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: ["aps:*"]
                Resource: "*"
              - Effect: Deny
                Action: ["aps:CreateRuleGroupsNamespace", "aps:DeleteRuleGroupsNamespace"]
                Resource: "*"
              - Effect: Deny
                Action: ["aps:DescribeRuleGroupsNamespace"]
                Resource: "arn:aws:aps:*:*:rulegroupsnamespace/*/secret"
  - id: "444455556666"
    users:
      - name: other
        access_keys: [{id: AKIAEXAMPLEOTHERBBB, secret: other-secret}]
        managed_policies: [AmazonPrometheusFullAccess]
      - name: otherwriter
        access_keys: [{id: AKIAEXAMPLEOTHERWRT, secret: otherwriter-secret}]
        managed_policies: [AmazonPrometheusRemoteWriteAccess]
`

type iamKey struct{ id, secret string }

var (
	keyAdmin       = iamKey{"AKIAEXAMPLEADMINAAA", "admin-secret"}
	keyWriter      = iamKey{"AKIAEXAMPLEWRITERAA", "writer-secret"}
	keyReader      = iamKey{"AKIAEXAMPLEREADERAA", "reader-secret"}
	keyRed         = iamKey{"AKIAEXAMPLEREDTEAMA", "red-secret"}
	keyNothing     = iamKey{"AKIAEXAMPLENOTHING", "nothing-secret"}
	keyRules       = iamKey{"AKIAEXAMPLERULESAAA", "rules-secret"}
	keyOther       = iamKey{"AKIAEXAMPLEOTHERBBB", "other-secret"}
	keyOtherWriter = iamKey{"AKIAEXAMPLEOTHERWRT", "otherwriter-secret"}
)

// startSigV4 starts a monolith with -auth.mode=sigv4 over iamYAML.
func startSigV4(t *testing.T, extra ...string) (*vigil.Vigil, string) {
	t.Helper()
	return startSigV4In(t, t.TempDir(), extra...)
}

// startSigV4In is startSigV4 with its state under dir.
func startSigV4In(t *testing.T, dir string, extra ...string) (*vigil.Vigil, string) {
	t.Helper()
	creds := filepath.Join(dir, "credentials.yaml")
	require.NoError(t, os.WriteFile(creds, []byte(iamYAML), 0o600))
	args := append([]string{"-auth.mode=sigv4", "-auth.credentials-file=" + creds, "-auth.control-plane-rate-limit=1000"}, extra...)
	return startMonolith(t, filepath.Join(dir, "data"), args...), dir
}

func (k iamKey) amp(base string) *amp.Client { return signedAMP(base, k.id, k.secret) }

// TestAMPContract drives every workspace operation through the AWS SDK for
// Go v2 AMP client (static credentials, custom endpoint, SigV4), with each
// typed error, pagination and idempotency.
func TestAMPContract(t *testing.T) {
	v, dir := startSigV4(t, "-controlplane.max-workspaces-per-account=3")
	ctx := context.Background()
	c := keyAdmin.amp(v.BaseURL())

	// CreateWorkspace: alias, tags, KMS key recorded, clientToken.
	kms := "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-aaaa-bbbb-cccc-000000000001"
	in := &amp.CreateWorkspaceInput{Alias: aws.String("prod"), Tags: map[string]string{"team": "red"}, KmsKeyArn: aws.String(kms), ClientToken: aws.String("token-1")}
	created, err := c.CreateWorkspace(ctx, in)
	require.NoError(t, err)
	ws := *created.WorkspaceId
	require.Equal(t, kms, *created.KmsKeyArn)
	again, err := c.CreateWorkspace(ctx, in)
	require.NoError(t, err)
	require.Equal(t, ws, *again.WorkspaceId, "the same clientToken and parameters: the same workspace")
	_, err = c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("other"), ClientToken: aws.String("token-1")})
	var conflict *types.ConflictException
	require.ErrorAs(t, err, &conflict)
	_, err = c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{KmsKeyArn: aws.String("arn:aws:kms:us-east-1:111122223333:alias/" + strings.Repeat("x", 100))})
	var badKey *types.ValidationException
	require.ErrorAs(t, err, &badKey)
	require.Equal(t, "kmsKeyArn", *badKey.FieldList[0].Name)

	// DescribeWorkspace.
	desc, err := c.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(ws)})
	require.NoError(t, err)
	require.Equal(t, "prod", *desc.Workspace.Alias)
	require.Equal(t, kms, *desc.Workspace.KmsKeyArn)
	require.Equal(t, map[string]string{"team": "red"}, desc.Workspace.Tags)

	// UpdateWorkspaceAlias.
	_, err = c.UpdateWorkspaceAlias(ctx, &amp.UpdateWorkspaceAliasInput{WorkspaceId: aws.String(ws), Alias: aws.String("production")})
	require.NoError(t, err)
	desc, err = c.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(ws)})
	require.NoError(t, err)
	require.Equal(t, "production", *desc.Workspace.Alias)
	_, err = c.UpdateWorkspaceAlias(ctx, &amp.UpdateWorkspaceAliasInput{WorkspaceId: aws.String(ws), Alias: aws.String(strings.Repeat("a", 101))})
	var invalid *types.ValidationException
	require.ErrorAs(t, err, &invalid)
	require.Equal(t, "alias", *invalid.FieldList[0].Name)

	// ListWorkspaces: pagination and the alias filter.
	second, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("staging")})
	require.NoError(t, err)
	third, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("prod-eu")})
	require.NoError(t, err)
	var ids []string
	pages := 0
	for p := amp.NewListWorkspacesPaginator(c, &amp.ListWorkspacesInput{MaxResults: aws.Int32(2)}); p.HasMorePages(); pages++ {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		for _, w := range page.Workspaces {
			ids = append(ids, *w.WorkspaceId)
		}
	}
	require.Equal(t, 2, pages)
	require.Equal(t, []string{ws, *second.WorkspaceId, *third.WorkspaceId}, ids)
	list, err := c.ListWorkspaces(ctx, &amp.ListWorkspacesInput{Alias: aws.String("prod")})
	require.NoError(t, err)
	require.Len(t, list.Workspaces, 2, "the alias filter is a prefix: production and prod-eu")
	_, err = c.ListWorkspaces(ctx, &amp.ListWorkspacesInput{NextToken: aws.String("garbage!")})
	require.ErrorAs(t, err, &invalid)

	// ServiceQuotaExceededException at the account's quota (3 here).
	_, err = c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	var quota *types.ServiceQuotaExceededException
	require.ErrorAs(t, err, &quota)

	// Workspace configuration.
	cfg, err := c.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(ws)})
	require.NoError(t, err)
	require.Equal(t, int32(150), *cfg.WorkspaceConfiguration.RetentionPeriodInDays, "the default: AMP's 150 days")
	upd, err := c.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{
		WorkspaceId: aws.String(ws), RetentionPeriodInDays: aws.Int32(30),
		LimitsPerLabelSet: []types.LimitsPerLabelSet{{LabelSet: map[string]string{"job": "api"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(1000)}}},
	})
	require.NoError(t, err)
	require.Equal(t, types.WorkspaceConfigurationStatusCodeActive, upd.Status.StatusCode)
	cfg, err = c.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(ws)})
	require.NoError(t, err)
	require.Equal(t, int32(30), *cfg.WorkspaceConfiguration.RetentionPeriodInDays)
	require.Len(t, cfg.WorkspaceConfiguration.LimitsPerLabelSet, 1)
	require.Equal(t, int64(1000), *cfg.WorkspaceConfiguration.LimitsPerLabelSet[0].Limits.MaxSeries)
	_, err = c.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(ws), RetentionPeriodInDays: aws.Int32(0)})
	require.ErrorAs(t, err, &invalid)
	require.Equal(t, "retentionPeriodInDays", *invalid.FieldList[0].Name)

	// Resource policy with revisionId.
	doc := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"aps:RemoteWrite","Resource":"%s"}]}`, *created.Arn)
	_, err = c.DescribeResourcePolicy(ctx, &amp.DescribeResourcePolicyInput{WorkspaceId: aws.String(ws)})
	var missing *types.ResourceNotFoundException
	require.ErrorAs(t, err, &missing)
	require.Equal(t, ws, *missing.ResourceId)
	put, err := c.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: aws.String(ws), PolicyDocument: aws.String(doc), RevisionId: aws.String("NO_POLICY")})
	require.NoError(t, err, "NO_POLICY: the first policy")
	_, err = c.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: aws.String(ws), PolicyDocument: aws.String(doc), RevisionId: aws.String("NO_POLICY")})
	require.ErrorAs(t, err, &conflict, "NO_POLICY when there is one")
	require.Equal(t, types.WorkspacePolicyStatusCodeActive, put.PolicyStatus)
	_, err = c.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: aws.String(ws), PolicyDocument: aws.String(doc), RevisionId: aws.String("stale")})
	require.ErrorAs(t, err, &conflict)
	put2, err := c.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: aws.String(ws), PolicyDocument: aws.String(doc), RevisionId: put.RevisionId})
	require.NoError(t, err)
	require.NotEqual(t, *put.RevisionId, *put2.RevisionId)
	retried, err := c.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: aws.String(ws), PolicyDocument: aws.String(doc), RevisionId: put.RevisionId, ClientToken: aws.String("put-2")})
	require.ErrorAs(t, err, &conflict, "an old revision")
	put2, err = c.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: aws.String(ws), PolicyDocument: aws.String(doc), RevisionId: put2.RevisionId, ClientToken: aws.String("put-3")})
	require.NoError(t, err)
	retried, err = c.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: aws.String(ws), PolicyDocument: aws.String(doc), RevisionId: aws.String("stale-after-success"), ClientToken: aws.String("put-3")})
	require.NoError(t, err, "a retried put (same clientToken and document) gets the first call's answer")
	require.Equal(t, *put2.RevisionId, *retried.RevisionId)
	got, err := c.DescribeResourcePolicy(ctx, &amp.DescribeResourcePolicyInput{WorkspaceId: aws.String(ws)})
	require.NoError(t, err)
	require.Equal(t, doc, *got.PolicyDocument)
	require.Equal(t, *put2.RevisionId, *got.RevisionId)
	_, err = c.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: aws.String(ws), PolicyDocument: aws.String(`{"Statement":[]}`)})
	require.ErrorAs(t, err, &invalid)
	_, err = c.DeleteResourcePolicy(ctx, &amp.DeleteResourcePolicyInput{WorkspaceId: aws.String(ws), RevisionId: put.RevisionId})
	require.ErrorAs(t, err, &conflict)
	_, err = c.DeleteResourcePolicy(ctx, &amp.DeleteResourcePolicyInput{WorkspaceId: aws.String(ws), RevisionId: put2.RevisionId, ClientToken: aws.String("delete-1")})
	require.NoError(t, err)
	_, err = c.DeleteResourcePolicy(ctx, &amp.DeleteResourcePolicyInput{WorkspaceId: aws.String(ws), RevisionId: put2.RevisionId, ClientToken: aws.String("delete-1")})
	require.NoError(t, err, "a retried delete (same clientToken) succeeds again")
	_, err = c.DescribeResourcePolicy(ctx, &amp.DescribeResourcePolicyInput{WorkspaceId: aws.String(ws)})
	require.ErrorAs(t, err, &missing)

	// Tags on the workspace ARN.
	arn := *created.Arn
	_, err = c.TagResource(ctx, &amp.TagResourceInput{ResourceArn: aws.String(arn), Tags: map[string]string{"env": "prod", "cost-center": "42"}})
	require.NoError(t, err)
	tags, err := c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"team": "red", "env": "prod", "cost-center": "42"}, tags.Tags)
	_, err = c.UntagResource(ctx, &amp.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"env", "absent"}})
	require.NoError(t, err)
	tags, err = c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"team": "red", "cost-center": "42"}, tags.Tags)
	many := map[string]string{}
	for i := 0; i < 49; i++ {
		many[fmt.Sprint("k", i)] = "v"
	}
	_, err = c.TagResource(ctx, &amp.TagResourceInput{ResourceArn: aws.String(arn), Tags: many})
	require.ErrorAs(t, err, &invalid, "51 tags: over the 50 a resource may carry")
	_, err = c.TagResource(ctx, &amp.TagResourceInput{ResourceArn: aws.String("arn:aws:s3:::bucket"), Tags: map[string]string{"a": "b"}})
	require.ErrorAs(t, err, &invalid)
	_, err = c.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String("arn:aws:aps:us-east-1:111122223333:workspace/ws-00000000-0000-4000-8000-000000000000")})
	require.ErrorAs(t, err, &missing)

	// AccessDeniedException: a user allowed only remote write.
	_, err = keyWriter.amp(v.BaseURL()).ListWorkspaces(ctx, &amp.ListWorkspacesInput{})
	var denied *types.AccessDeniedException
	require.ErrorAs(t, err, &denied)
	require.Contains(t, *denied.Message, "arn:aws:iam::111122223333:user/writer is not authorized to perform: aps:ListWorkspaces")

	// DeleteWorkspace, then ResourceNotFoundException everywhere.
	_, err = c.DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String(ws)})
	require.NoError(t, err)
	_, err = c.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(ws)})
	require.ErrorAs(t, err, &missing)
	_, err = c.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(ws)})
	require.ErrorAs(t, err, &missing)
	_, err = c.UpdateWorkspaceAlias(ctx, &amp.UpdateWorkspaceAliasInput{WorkspaceId: aws.String(ws), Alias: aws.String("x")})
	require.ErrorAs(t, err, &missing)
	_, err = c.DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String(ws)})
	require.ErrorAs(t, err, &missing)

	// The audit trail holds every call, and no secret.
	trail, err := os.ReadFile(filepath.Join(dir, "data", "audit.log"))
	require.NoError(t, err)
	for _, secret := range []string{"admin-secret", "writer-secret", "Signature="} {
		require.NotContains(t, string(trail), secret)
	}
	for _, op := range []string{"CreateWorkspace", "UpdateWorkspaceAlias", "PutResourcePolicy", "TagResource", "UntagResource", "DeleteWorkspace", "UpdateWorkspaceConfiguration"} {
		require.Contains(t, string(trail), `"eventName":"`+op+`"`)
	}
	require.Contains(t, string(trail), `"errorCode":"AccessDeniedException"`)
}

// noRetry makes an AMP client call once, so that a throttled call shows.
func noRetry(o *amp.Options) { o.RetryMaxAttempts = 1 }

// countThrottled makes n calls at once and counts those throttled
// (ThrottlingException); any other error fails the test.
func countThrottled(t *testing.T, n int, call func() error) int {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = call()
		}()
	}
	wg.Wait()
	throttled := 0
	for _, err := range errs {
		var th *types.ThrottlingException
		if errors.As(err, &th) {
			throttled++
			continue
		}
		require.NoError(t, err)
	}
	return throttled
}

// TestControlPlaneThrottling: one account past 10 operations per second
// gets ThrottlingException; another account is not held back by it.
func TestControlPlaneThrottling(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	require.NoError(t, os.WriteFile(creds, []byte(iamYAML), 0o600))
	v := startMonolith(t, filepath.Join(dir, "data"), "-auth.mode=sigv4", "-auth.credentials-file="+creds)
	ctx := context.Background()
	c := keyAdmin.amp(v.BaseURL())
	throttled := countThrottled(t, 30, func() error {
		_, err := c.ListWorkspaces(ctx, &amp.ListWorkspacesInput{}, noRetry)
		return err
	})
	require.GreaterOrEqual(t, throttled, 10, "30 calls at once against a bucket of 10")
	_, err := keyOther.amp(v.BaseURL()).ListWorkspaces(ctx, &amp.ListWorkspacesInput{}, noRetry)
	require.NoError(t, err, "the rate is per account")
}

// TestConfigurationFeedsIngesters: a workspace's limitsPerLabelSet caps
// its series in the ingesters from the next push.
func TestConfigurationFeedsIngesters(t *testing.T) {
	v := startMonolith(t, t.TempDir())
	c := ampClient(v.BaseURL())
	ctx := context.Background()
	out, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	_, err = c.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: out.WorkspaceId,
		LimitsPerLabelSet: []types.LimitsPerLabelSet{{LabelSet: map[string]string{"job": "api"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(1)}}}})
	require.NoError(t, err)
	now := time.Now().UnixMilli()
	w := remoteWriter(t, workspaceURL(v.BaseURL(), *out.WorkspaceId)+"/api/v1/remote_write")
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("a", map[string]string{"job": "api"}, prompb.Sample{Timestamp: now, Value: 1}),
		series("b", map[string]string{"job": "api"}, prompb.Sample{Timestamp: now, Value: 1}),
		series("c", map[string]string{"job": "db"}, prompb.Sample{Timestamp: now, Value: 1}),
	}}
	_, err = w.Store(ctx, encode(t, req), 0)
	require.ErrorContains(t, err, `per-labelset series limit of 1 exceeded for label set {job="api"}`)
	require.ErrorContains(t, err, "1 sample(s) rejected")
}
