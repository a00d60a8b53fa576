package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

type staticKeys map[string]string

func (k staticKeys) Lookup(id string) (string, Identity, bool) {
	s, ok := k[id]
	return s, Identity{Account: "111122223333", User: "writer", AccessKeyID: id}, ok
}

var (
	signedAt = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	keys     = staticKeys{"AKIAEXAMPLEWRITER": "writer-secret"}
)

func verifier() *Verifier {
	v := NewVerifier("aps", "us-east-1", keys)
	v.Now = func() time.Time { return signedAt.Add(time.Minute) }
	return v
}

func hashOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// signed returns a request signed by the AWS SDK's own signer.
func signed(t *testing.T, method, target string, body []byte, secret, service, region string, at time.Time) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	creds := aws.Credentials{AccessKeyID: "AKIAEXAMPLEWRITER", SecretAccessKey: secret}
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, r, hashOf(body), service, region, at))
	return r
}

func presigned(t *testing.T, target string, expires time.Duration, at time.Time) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	q := r.URL.Query()
	q.Set("X-Amz-Expires", "60")
	if expires > 0 {
		q.Set("X-Amz-Expires", strings.TrimSuffix(expires.String(), "s"))
	}
	r.URL.RawQuery = q.Encode()
	creds := aws.Credentials{AccessKeyID: "AKIAEXAMPLEWRITER", SecretAccessKey: "writer-secret"}
	u, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, r, "UNSIGNED-PAYLOAD", "aps", "us-east-1", at)
	require.NoError(t, err)
	return httptest.NewRequest(http.MethodGet, u, nil)
}

const target = "http://aps-workspaces.example:9009/workspaces/ws-1/api/v1/query?query=sum%28rate%28up%5B5m%5D%29%29&time=1700000000"

func TestSignedRequestsPass(t *testing.T) {
	body := []byte("a remote-write body")
	for _, r := range []*http.Request{
		signed(t, http.MethodPost, "http://aps-workspaces.example:9009/workspaces/ws-1/api/v1/remote_write", body, "writer-secret", "aps", "us-east-1", signedAt),
		signed(t, http.MethodGet, target, nil, "writer-secret", "aps", "us-east-1", signedAt),
		signed(t, http.MethodGet, "http://h/workspaces/ws-1/api/v1/label/__name__/values?match[]=up%7Bjob%3D%22a+b%22%7D&match[]=x", nil, "writer-secret", "aps", "us-east-1", signedAt),
		signed(t, http.MethodGet, "http://h/workspaces/a%20b/api", nil, "writer-secret", "aps", "us-east-1", signedAt),
		presigned(t, target, 0, signedAt),
	} {
		var b []byte
		if r.Body != nil {
			b = body
			if r.Method == http.MethodGet {
				b = nil
			}
		}
		id, _, err := verifier().Verify(r, b)
		require.NoError(t, err, r.URL.String())
		require.Equal(t, "111122223333", id.Account)
	}
}

func TestBadSignaturesAreRefused(t *testing.T) {
	body := []byte("a remote-write body")
	write := "http://h/workspaces/ws-1/api/v1/remote_write"
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		body []byte
		id   string
	}{
		{"wrong secret", func() *http.Request { return signed(t, "POST", write, body, "other", "aps", "us-east-1", signedAt) }, body, apierror.IDSignatureMismatch},
		{"unknown key", func() *http.Request {
			r := signed(t, "POST", write, body, "writer-secret", "aps", "us-east-1", signedAt)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "AKIAEXAMPLEWRITER", "AKIAUNKNOWN", 1))
			return r
		}, body, apierror.IDUnknownAccessKey},
		{"expired date", func() *http.Request {
			return signed(t, "POST", write, body, "writer-secret", "aps", "us-east-1", signedAt.Add(-10*time.Minute))
		}, body, apierror.IDSignatureExpired},
		{"future date", func() *http.Request {
			return signed(t, "POST", write, body, "writer-secret", "aps", "us-east-1", signedAt.Add(10*time.Minute))
		}, body, apierror.IDSignatureExpired},
		{"tampered body", func() *http.Request {
			return signed(t, "POST", write, body, "writer-secret", "aps", "us-east-1", signedAt)
		}, []byte("another body"), apierror.IDSignatureMismatch},
		{"tampered query", func() *http.Request {
			r := signed(t, "GET", target, nil, "writer-secret", "aps", "us-east-1", signedAt)
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "up", "secret_metric", 1)
			return r
		}, nil, apierror.IDSignatureMismatch},
		{"tampered path", func() *http.Request {
			r := signed(t, "GET", target, nil, "writer-secret", "aps", "us-east-1", signedAt)
			r.URL.Path = strings.Replace(r.URL.Path, "ws-1", "ws-2", 1)
			return r
		}, nil, apierror.IDSignatureMismatch},
		{"wrong service", func() *http.Request {
			return signed(t, "POST", write, body, "writer-secret", "s3", "us-east-1", signedAt)
		}, body, apierror.IDSignatureMismatch},
		{"wrong region", func() *http.Request {
			return signed(t, "POST", write, body, "writer-secret", "aps", "eu-west-1", signedAt)
		}, body, apierror.IDSignatureMismatch},
		{"host not signed", func() *http.Request {
			r := signed(t, "POST", write, body, "writer-secret", "aps", "us-east-1", signedAt)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=", "SignedHeaders=content-encoding;", 1))
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), ";host;", ";", 1))
			return r
		}, body, apierror.IDIncompleteSignature},
		{"signed header removed", func() *http.Request {
			r := signed(t, "POST", write, body, "writer-secret", "aps", "us-east-1", signedAt)
			r.Header.Del("Content-Encoding")
			return r
		}, body, apierror.IDIncompleteSignature},
		{"no signature", func() *http.Request { return httptest.NewRequest("POST", write, nil) }, nil, apierror.IDIncompleteSignature},
		{"presigned after expiry", func() *http.Request { return presigned(t, target, 0, signedAt.Add(-2*time.Minute)) }, nil, apierror.IDSignatureExpired},
		{"presigned tampered", func() *http.Request {
			r := presigned(t, target, 0, signedAt)
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "time=1700000000", "time=1700000001", 1)
			return r
		}, nil, apierror.IDSignatureMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := verifier().Verify(tc.req(), tc.body)
			require.Error(t, err)
			require.Equal(t, http.StatusForbidden, apierror.StatusOf(err))
			require.Equal(t, tc.id, apierror.From(err).ID, err.Error())
		})
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEWRITER/20261125/us-east-1/aps/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("a", 64))
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request,SignedHeaders=host,Signature=zz")
	f.Add("Basic dXNlcjpwYXNz")
	f.Fuzz(func(t *testing.T, h string) {
		sig, err := ParseAuthorization(h)
		if err != nil {
			require.Equal(t, http.StatusForbidden, apierror.StatusOf(err))
			require.LessOrEqual(t, len(err.Error()), 400, "a hostile header does not grow the message")
			return
		}
		require.Len(t, sig.signature, 64)
		require.Contains(t, sig.signedHeaders, "host")
		require.NotEmpty(t, sig.accessKey)
	})
}

// TestBodyIsReadOnlyForAKnownFreshSignature: an anonymous or stale request
// never gets its body read.
func TestBodyIsReadOnlyForAKnownFreshSignature(t *testing.T) {
	body := []byte("a remote-write body")
	write := "http://h/workspaces/ws-1/api/v1/remote_write"
	unknown := signed(t, "POST", write, body, "writer-secret", "aps", "us-east-1", signedAt)
	unknown.Header.Set("Authorization", strings.Replace(unknown.Header.Get("Authorization"), "AKIAEXAMPLEWRITER", "AKIAUNKNOWN", 1))
	for _, r := range []*http.Request{
		httptest.NewRequest("POST", write, bytes.NewReader(body)),
		unknown,
		signed(t, "POST", write, body, "writer-secret", "aps", "us-east-1", signedAt.Add(-time.Hour)),
	} {
		read := false
		_, _, err := verifier().VerifyReading(r, func(BodyRead) ([]byte, error) { read = true; return body, nil })
		require.Error(t, err)
		require.False(t, read)
	}
	read := false
	_, _, err := verifier().VerifyReading(signed(t, "POST", write, body, "writer-secret", "aps", "us-east-1", signedAt), func(b BodyRead) ([]byte, error) {
		require.Equal(t, "AKIAEXAMPLEWRITER", b.AccessKeyID)
		require.False(t, b.Verified, "without a declared payload hash the body is read to check the signature")
		read = true
		return body, nil
	})
	require.NoError(t, err)
	require.True(t, read)
}
