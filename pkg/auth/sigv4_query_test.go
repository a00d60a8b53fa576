package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// queryPair is one query parameter, decoded.
type queryPair struct{ name, value string }

// reservedQueries are queries whose names and values hold the characters
// signers and servers disagree about most: brackets, spaces, "+", "~", "%",
// "=", non-ASCII, and a repeated name whose values arrive unsorted.
var reservedQueries = map[string][]queryPair{
	"brackets":    {{"match[]", "up"}},
	"selector":    {{"match[]", `up{job="a b",env=~"pro.+"}`}, {"start", "1700000000"}},
	"space":       {{"query", "sum by (job) (up)"}},
	"plus":        {{"query", "1+1"}},
	"tilde":       {{"~name~", "~value~"}},
	"percent":     {{"query", "100%"}, {"per%cent", "%41"}, {"pct", "%zz"}},
	"equals":      {{"query", "a=b==c"}},
	"non-ASCII":   {{"query", `up{city="Zürich"}`}, {"ラベル", "値"}},
	"unsorted":    {{"match[]", "zzz"}, {"match[]", "aaa"}, {"limit", "10"}, {"a", ""}},
	"empty value": {{"match[]", "up"}, {"limit", ""}},
}

// percentEncoded writes the query as clients that encode do: every name and
// value escaped, a space as "%20" (spaceAsPlus: as "+", form-style).
func percentEncoded(pairs []queryPair, spaceAsPlus bool) string {
	var parts []string
	for _, p := range pairs {
		enc := func(s string) string {
			if spaceAsPlus {
				return url.QueryEscape(s)
			}
			return uriEncode(s)
		}
		parts = append(parts, enc(p.name)+"="+enc(p.value))
	}
	return strings.Join(parts, "&")
}

// literal writes the query with every character that may stand unescaped in
// a request line left as it is: brackets, "~", "=", "+", quotes, non-ASCII
// bytes. What cannot (a space, "%", "&", "#", a name's "=") is encoded, a
// space as "+".
func literal(pairs []queryPair) string {
	var parts []string
	for _, p := range pairs {
		esc := func(s string, name bool) string {
			var b strings.Builder
			for i := 0; i < len(s); i++ {
				switch c := s[i]; {
				case c == ' ':
					b.WriteByte('+')
				case c == '%' || c == '&' || c == '#' || c == '+' || (name && c == '='):
					b.WriteString(url.QueryEscape(string(c)))
				default:
					b.WriteByte(c)
				}
			}
			return b.String()
		}
		parts = append(parts, esc(p.name, true)+"="+esc(p.value, false))
	}
	return strings.Join(parts, "&")
}

// sent is the forms a query is sent in.
func sentForms(pairs []queryPair) map[string]string {
	return map[string]string{
		"percent-encoded":       percentEncoded(pairs, false),
		"percent-encoded, form": percentEncoded(pairs, true),
		"literal":               literal(pairs),
	}
}

const queryPath = "http://aps-workspaces.example:9009/workspaces/ws-1/api/v1/series"

// TestQueriesSignedByTheGoSDKVerify: the AWS SDK for Go v2 signs the
// query it parses from the URL, re-encoded; the request verifies however
// the query was written on the wire.
func TestQueriesSignedByTheGoSDKVerify(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "AKIAEXAMPLEWRITER", SecretAccessKey: "writer-secret"}
	for name, pairs := range reservedQueries {
		for form, query := range sentForms(pairs) {
			t.Run(name+"/"+form, func(t *testing.T) {
				r, err := http.NewRequest(http.MethodGet, queryPath, nil)
				require.NoError(t, err)
				r.URL.RawQuery = query
				require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, r, hashOf(nil), "aps", "us-east-1", signedAt))
				r.URL.RawQuery = query // the SDK rewrote it in its own encoding
				_, _, err = verifier().Verify(r, nil)
				require.NoError(t, err, "query %q", query)

				tampered := r.Clone(context.Background())
				tampered.URL.RawQuery = query + "&extra=1"
				_, _, err = verifier().Verify(tampered, nil)
				require.Error(t, err, "a query parameter added after signing")
			})
		}
	}
}

// TestQueriesSignedByBotocoreVerify: botocore (the AWS CLI's and boto3's
// signer) signs parameters it encodes itself as AWS specifies, and a query
// that came in the URL as it is written there. Both verify.
func TestQueriesSignedByBotocoreVerify(t *testing.T) {
	type request struct {
		Method string      `json:"method"`
		URL    string      `json:"url"`
		Params [][2]string `json:"params"`
	}
	var reqs []request
	var names []string
	for name, pairs := range reservedQueries {
		params := [][2]string{}
		for _, p := range pairs {
			params = append(params, [2]string{p.name, p.value})
		}
		reqs = append(reqs, request{Method: http.MethodGet, URL: queryPath, Params: params})
		names = append(names, name+"/parameters")
		for form, query := range sentForms(pairs) {
			reqs = append(reqs, request{Method: http.MethodGet, URL: queryPath + "?" + query})
			names = append(names, name+"/URL "+form)
		}
	}
	in, err := json.Marshal(reqs)
	require.NoError(t, err)
	cmd := exec.Command("python3", "testdata/botocore_sign.py", "AKIAEXAMPLEWRITER", "writer-secret", "us-east-1")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "botocore signer: %s", stderr.String())
	var signed []struct {
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
	}
	require.NoError(t, json.Unmarshal(out, &signed))
	require.Len(t, signed, len(reqs))

	v := NewVerifier("aps", "us-east-1", keys) // botocore signs with the real clock
	for i, s := range signed {
		t.Run(names[i], func(t *testing.T) {
			base, rawQuery, _ := strings.Cut(s.URL, "?")
			r, err := http.NewRequest(http.MethodGet, base, nil)
			require.NoError(t, err)
			r.URL.RawQuery = rawQuery // byte for byte as botocore sends it
			for k, val := range s.Headers {
				r.Header.Set(k, val)
			}
			_, _, err = v.Verify(r, nil)
			require.NoError(t, err, "query %q", rawQuery)

			tampered := r.Clone(context.Background())
			tampered.URL.RawQuery = strings.Replace(rawQuery, "=", "=x", 1)
			_, _, err = v.Verify(tampered, nil)
			require.Error(t, err, "a value changed after signing")
		})
	}
}

func TestCanonicalQueries(t *testing.T) {
	for _, tc := range []struct {
		raw       string
		presigned bool
		want      []string
	}{
		{"", false, []string{""}},
		{"b=2&a=1", false, []string{"a=1&b=2"}},
		{"match%5B%5D=up", false, []string{"match%5B%5D=up"}},
		{"match[]=up", false, []string{"match%5B%5D=up", "match[]=up"}},
		{"m=b&m=a", false, []string{"m=a&m=b"}},
		{"q=a+b", false, []string{"q=a%20b", "q=a+b"}},
		{"q=a%20b", false, []string{"q=a%20b"}},
		{"q=%7e", false, []string{"q=~", "q=%7e"}},
		{"flag", false, []string{"flag="}},
		{"X-Amz-Signature=abc&X-Amz-Date=1", true, []string{"X-Amz-Date=1"}},
		{"X-Amz-Signature=abc&X-Amz-Date=1", false, []string{"X-Amz-Date=1&X-Amz-Signature=abc"}},
		{"X-Amz-Signature=abc&X-Amz-Signature=def", false, []string{"X-Amz-Signature=abc&X-Amz-Signature=def"}},
	} {
		got, err := canonicalQueries(tc.raw, tc.presigned)
		require.NoError(t, err, tc.raw)
		require.Equal(t, tc.want, got, tc.raw)
	}
	// A pair that does not decode is refused: no parser can be trusted to
	// read it as the signer meant, and leaving it out would let anyone add
	// it to a signed request.
	for _, raw := range []string{"q=100%", "limit=%zz", "%zz=1", "a=1&b=%4", "X-Amz-Signature=a&X-Amz-%53ignature=b"} {
		_, err := canonicalQueries(raw, strings.Contains(raw, "Signature"))
		require.Equal(t, http.StatusBadRequest, apierror.StatusOf(err), raw)
		require.Equal(t, apierror.IDMalformedQueryString, apierror.From(err).ID)
	}
}

// TestNothingCanBeAddedToASignedQuery: whatever is appended to a signed
// request's query, decodable or not, fails it.
func TestNothingCanBeAddedToASignedQuery(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "AKIAEXAMPLEWRITER", SecretAccessKey: "writer-secret"}
	r, err := http.NewRequest(http.MethodGet, queryPath+"?match%5B%5D=up", nil)
	require.NoError(t, err)
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, r, hashOf(nil), "aps", "us-east-1", signedAt))
	_, _, err = verifier().Verify(r, nil)
	require.NoError(t, err)
	for _, extra := range []string{"&limit=%zz", "&%zz=1", "&match%5B%5D=%", "&limit=1", "&", "&&"} {
		tampered := r.Clone(context.Background())
		tampered.URL.RawQuery += extra
		_, _, err := verifier().Verify(tampered, nil)
		if extra == "&" || extra == "&&" {
			require.NoError(t, err, "empty pairs are no pairs: %q", extra)
			continue
		}
		require.Error(t, err, "%q appended", extra)
	}
}

// TestDeclaredPayloadIsCheckedBeforeTheBodyIsRead: with X-Amz-Content-Sha256
// declared, a wrong signature is refused before the body is read; a right
// one reads it and checks its hash.
func TestDeclaredPayloadIsCheckedBeforeTheBodyIsRead(t *testing.T) {
	body := []byte("a remote-write body")
	write := "http://h/workspaces/ws-1/api/v1/remote_write"
	withHeader := func(secret string) *http.Request {
		r, err := http.NewRequest(http.MethodPost, write, bytes.NewReader(body))
		require.NoError(t, err)
		r.Header.Set(contentSHA256, hashOf(body))
		creds := aws.Credentials{AccessKeyID: "AKIAEXAMPLEWRITER", SecretAccessKey: secret}
		require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, r, hashOf(body), "aps", "us-east-1", signedAt))
		return r
	}
	read := false
	reader := func(data []byte) BodyReader {
		return func(b BodyRead) ([]byte, error) {
			require.True(t, b.Verified, "read once the signature verified")
			require.False(t, b.Chunked)
			read = true
			return data, nil
		}
	}
	_, _, err := verifier().VerifyReading(withHeader("not-the-secret"), reader(body))
	require.Error(t, err)
	require.False(t, read, "a wrong signature over a declared hash reads no body")

	_, got, err := verifier().VerifyReading(withHeader("writer-secret"), reader(body))
	require.NoError(t, err)
	require.True(t, read)
	require.Equal(t, body, got)

	_, _, err = verifier().VerifyReading(withHeader("writer-secret"), reader([]byte("another body")))
	require.ErrorContains(t, err, "does not match what was computed")
}
