package integration

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/sigv4"
	"github.com/stretchr/testify/require"
)

func signedAMP(base, key, secret string) *amp.Client {
	return amp.New(amp.Options{
		BaseEndpoint: aws.String(base),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, ""),
	})
}

func sigv4Config(key, secret string) *sigv4.SigV4Config {
	return &sigv4.SigV4Config{Region: "us-east-1", AccessKey: key, SecretKey: config_util.Secret(secret)}
}

// signedWriter is Prometheus's remote-write client with its sigv4 block.
func signedWriter(t *testing.T, rawURL, key, secret string) remote.WriteClient {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	c, err := remote.NewWriteClient("sigv4", &remote.ClientConfig{
		URL: &config_util.URL{URL: u}, Timeout: model.Duration(10 * time.Second), SigV4Config: sigv4Config(key, secret),
	})
	require.NoError(t, err)
	return c
}

// signedQuerier is the Prometheus HTTP API client signing with SigV4, as
// Grafana's SigV4 auth does.
func signedQuerier(t *testing.T, endpoint, key, secret string) promv1.API {
	t.Helper()
	rt, err := sigv4.NewSigV4RoundTripper(sigv4Config(key, secret), http.DefaultTransport)
	require.NoError(t, err)
	c, err := promapi.NewClient(promapi.Config{Address: endpoint, RoundTripper: rt})
	require.NoError(t, err)
	return promv1.NewAPI(c)
}

// TestSigV4AccountsAreIsolated: with -auth.mode=sigv4 the AWS SDK, Prometheus's
// remote-write sigv4 block and a SigV4-signing query client work with their
// account's keys; unsigned and wrongly signed requests get 403; another
// account's workspace looks missing on every path.
func TestSigV4AccountsAreIsolated(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	require.NoError(t, os.WriteFile(creds, []byte(iamYAML), 0o600))
	v := startMonolith(t, filepath.Join(dir, "data"), "-auth.mode=sigv4", "-auth.credentials-file="+creds)
	ctx := context.Background()

	admin := signedAMP(v.BaseURL(), "AKIAEXAMPLEADMINAAA", "admin-secret")
	created, err := admin.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("signed")})
	require.NoError(t, err)
	ws := *created.WorkspaceId
	require.Contains(t, *created.Arn, ":111122223333:workspace/")

	// Wrong secret, unsigned: 403 AccessDeniedException.
	_, err = signedAMP(v.BaseURL(), "AKIAEXAMPLEADMINAAA", "not-the-secret").ListWorkspaces(ctx, &amp.ListWorkspacesInput{})
	var denied *types.AccessDeniedException
	require.ErrorAs(t, err, &denied)
	require.Contains(t, *denied.Message, "signature we calculated does not match")
	resp, err := http.Post(v.BaseURL()+"/workspaces", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, "AccessDeniedException", resp.Header.Get("x-amzn-ErrorType"))

	// Another account: the workspace does not exist for it, on every path.
	other := signedAMP(v.BaseURL(), "AKIAEXAMPLEOTHERBBB", "other-secret")
	_, err = other.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(ws)})
	var missing *types.ResourceNotFoundException
	require.ErrorAs(t, err, &missing)
	list, err := other.ListWorkspaces(ctx, &amp.ListWorkspacesInput{})
	require.NoError(t, err)
	require.Empty(t, list.Workspaces)

	now := time.Now()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("signed_up", nil, prompb.Sample{Timestamp: now.UnixMilli(), Value: 1})}}
	_, err = signedWriter(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write", "AKIAEXAMPLEADMINAAA", "admin-secret").Store(ctx, encode(t, req), 0)
	require.NoError(t, err, "Prometheus's sigv4 block writes")
	_, err = signedWriter(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write", "AKIAEXAMPLEOTHERBBB", "other-secret").Store(ctx, encode(t, req), 0)
	require.ErrorContains(t, err, "404", "another account cannot write")
	_, err = remoteWriter(t, workspaceURL(v.BaseURL(), ws)+"/api/v1/remote_write").Store(ctx, encode(t, req), 0)
	require.ErrorContains(t, err, "403", "an unsigned write is refused")

	res, _, _, err := signedQuerier(t, workspaceURL(v.BaseURL(), ws), "AKIAEXAMPLEADMINAAA", "admin-secret").Query(ctx, "signed_up", now)
	require.NoError(t, err)
	require.Len(t, res.(model.Vector), 1)
	_, _, _, err = signedQuerier(t, workspaceURL(v.BaseURL(), ws), "AKIAEXAMPLEOTHERBBB", "other-secret").Query(ctx, "signed_up", now)
	require.ErrorContains(t, err, "404")

	// X-Scope-OrgID names a workspace, never an account: another account's
	// signed request naming this workspace finds nothing.
	spoof, err := http.NewRequest(http.MethodGet, v.BaseURL()+"/prometheus/api/v1/query?query=signed_up", nil)
	require.NoError(t, err)
	spoof.Header.Set("X-Scope-OrgID", ws)
	rt, err := sigv4.NewSigV4RoundTripper(sigv4Config("AKIAEXAMPLEOTHERBBB", "other-secret"), http.DefaultTransport)
	require.NoError(t, err)
	resp, err = rt.RoundTrip(spoof)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
