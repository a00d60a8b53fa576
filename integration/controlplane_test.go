package integration

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/stretchr/testify/require"
)

func ampClient(base string) *amp.Client {
	return amp.New(amp.Options{
		BaseEndpoint: aws.String(base),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	})
}

// TestWorkspacesWithAWSSDK drives the workspace operations with the AWS SDK
// for Go v2 AMP client, which decodes responses and errors by AMP's model.
func TestWorkspacesWithAWSSDK(t *testing.T) {
	v := startMonolith(t, t.TempDir())
	c := ampClient(v.BaseURL())
	ctx := context.Background()

	created, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("team-a"), Tags: map[string]string{"env": "test"}})
	require.NoError(t, err)
	require.Equal(t, types.WorkspaceStatusCodeActive, created.Status.StatusCode)
	require.Equal(t, "arn:aws:aps:us-east-1:000000000000:workspace/"+*created.WorkspaceId, *created.Arn)
	require.Equal(t, map[string]string{"env": "test"}, created.Tags)

	desc, err := c.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: created.WorkspaceId})
	require.NoError(t, err)
	require.Equal(t, "team-a", *desc.Workspace.Alias)
	require.Equal(t, v.BaseURL()+"/workspaces/"+*created.WorkspaceId+"/", *desc.Workspace.PrometheusEndpoint)
	require.False(t, desc.Workspace.CreatedAt.IsZero())

	second, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("team-b")})
	require.NoError(t, err)

	// Pagination: one per page, in creation order.
	var ids []string
	p := amp.NewListWorkspacesPaginator(c, &amp.ListWorkspacesInput{MaxResults: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Workspaces), 1)
		for _, w := range page.Workspaces {
			ids = append(ids, *w.WorkspaceId)
		}
	}
	require.Equal(t, []string{*created.WorkspaceId, *second.WorkspaceId}, ids)

	// Alias filter.
	list, err := c.ListWorkspaces(ctx, &amp.ListWorkspacesInput{Alias: aws.String("team-b")})
	require.NoError(t, err)
	require.Len(t, list.Workspaces, 1)
	require.Equal(t, *second.WorkspaceId, *list.Workspaces[0].WorkspaceId)

	// Errors decode into AMP's exception types.
	_, err = c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Tags: map[string]string{"aws:reserved": "x"}})
	var ve *types.ValidationException
	require.True(t, errors.As(err, &ve), "got %v", err)

	_, err = c.DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: created.WorkspaceId})
	require.NoError(t, err)
	_, err = c.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: created.WorkspaceId})
	var nf *types.ResourceNotFoundException
	require.True(t, errors.As(err, &nf), "got %v", err)

	// A deleted workspace takes no more writes.
	code, body := post(t, workspaceURL(v.BaseURL(), *created.WorkspaceId)+"/api/v1/remote_write",
		map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}, nil)
	require.Equal(t, 404, code, body)
}
