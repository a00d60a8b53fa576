package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"
)

func mac(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// chunkedBody encodes data aws-chunked, as the AWS documentation for
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD describes: the seed signature by the
// SDK's signer, each chunk signed over the previous one. tamper changes a
// chunk after it is signed.
func chunkedBody(t *testing.T, data []byte, chunk int, tamper func([]byte) []byte) ([]byte, string) {
	t.Helper()
	r := httptest.NewRequest("POST", "http://h/workspaces/ws-1/api/v1/remote_write", nil)
	r.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(data)))
	r.Header.Set("Content-Encoding", "aws-chunked")
	r.Header.Set("X-Amz-Content-Sha256", streamingPayload)
	creds := aws.Credentials{AccessKeyID: "AKIAEXAMPLEWRITER", SecretAccessKey: "writer-secret"}
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, r, streamingPayload, "aps", "us-east-1", signedAt))
	auth := r.Header.Get("Authorization")
	seed := auth[bytes.LastIndex([]byte(auth), []byte("Signature="))+len("Signature="):]
	key := mac([]byte("AWS4writer-secret"), signedAt.Format("20060102"))
	key = mac(mac(mac(key, "us-east-1"), "aps"), "aws4_request")
	scope := signedAt.Format("20060102") + "/us-east-1/aps/aws4_request"
	var body bytes.Buffer
	prev := seed
	for off := 0; ; off += chunk {
		part := data[min(off, len(data)):min(off+chunk, len(data))]
		sum := sha256.Sum256(part)
		sig := hex.EncodeToString(mac(key, "AWS4-HMAC-SHA256-PAYLOAD\n"+signedAt.Format("20060102T150405Z")+"\n"+scope+"\n"+prev+"\n"+emptySHA256+"\n"+hex.EncodeToString(sum[:])))
		prev = sig
		if tamper != nil {
			part = tamper(part)
		}
		fmt.Fprintf(&body, "%x;chunk-signature=%s\r\n%s\r\n", len(part), sig, part)
		if len(part) == 0 {
			break
		}
	}
	return body.Bytes(), auth
}

func TestChunkedPayloads(t *testing.T) {
	data := bytes.Repeat([]byte("remote-write data "), 1000)
	req := func(body []byte, auth string) (*Identity, []byte, error) {
		r := httptest.NewRequest("POST", "http://h/workspaces/ws-1/api/v1/remote_write", bytes.NewReader(body))
		r.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(data)))
		r.Header.Set("Content-Encoding", "aws-chunked")
		r.Header.Set("X-Amz-Date", signedAt.Format("20060102T150405Z"))
		r.Header.Set("X-Amz-Content-Sha256", streamingPayload)
		r.Header.Set("Authorization", auth)
		id, got, err := verifier().VerifyReading(r, func(b BodyRead) ([]byte, error) {
			require.True(t, b.Verified, "the seed signature is checked before the body is read")
			require.True(t, b.Chunked)
			return append([]byte(nil), body...), nil // decoded in place
		})
		return &id, got, err
	}
	body, auth := chunkedBody(t, data, 4096, nil)
	id, got, err := req(body, auth)
	require.NoError(t, err)
	require.Equal(t, "111122223333", id.Account)
	require.Equal(t, data, got, "the handler gets the decoded data")

	tampered, auth := chunkedBody(t, data, 4096, func(p []byte) []byte {
		if len(p) > 0 {
			p = append([]byte{}, p...)
			p[0] ^= 1
		}
		return p
	})
	_, _, err = req(tampered, auth)
	require.ErrorContains(t, err, "the signature of chunk 0 does not match")

	for name, b := range map[string][]byte{
		"truncated":    body[:len(body)-10],
		"no final":     body[:bytes.LastIndex(body, []byte("0;chunk-signature"))],
		"trailing":     append(append([]byte{}, body...), "x"...),
		"huge size":    append([]byte("ffffffffff;chunk-signature=00\r\n"), body...),
		"no separator": []byte("10\r\n0123456789abcdef\r\n"),
	} {
		_, _, err := req(b, auth)
		require.Error(t, err, name)
		require.ErrorContains(t, err, "aws-chunked body", name)
	}
}
