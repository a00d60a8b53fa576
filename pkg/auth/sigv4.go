// Package auth verifies who a caller is: AWS Signature Version 4 over the
// request, checked against the keys of the configured identities.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/smithy-go/encoding/httpbinding"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

const (
	algorithm      = "AWS4-HMAC-SHA256"
	amzDateFormat  = "20060102T150405Z"
	scopeDate      = "20060102"
	scopeTerminal  = "aws4_request"
	unsignedBody   = "UNSIGNED-PAYLOAD"
	contentSHA256  = "X-Amz-Content-Sha256"
	maxPresignLife = 7 * 24 * time.Hour // AWS's bound on X-Amz-Expires
)

// DefaultClockSkew is how far a request's X-Amz-Date may be from the
// server's clock, as AWS allows.
const DefaultClockSkew = 5 * time.Minute

// Identity is the caller a request is signed by.
type Identity struct {
	Account     string
	User        string
	AccessKeyID string
	// Policies are the identity's compiled policies, managed and inline.
	Policies []*Policy
}

// Keys finds the secret of an access key and the identity it belongs to.
type Keys interface {
	Lookup(accessKeyID string) (secret string, id Identity, ok bool)
}

// Verifier checks SigV4 signatures of requests to one service in one region.
type Verifier struct {
	Service string
	Region  string
	Keys    Keys
	Skew    time.Duration
	Now     func() time.Time

	mu          sync.Mutex
	signingKeys map[signingKeyID][]byte // derived keys, by key, day (and secret)
}

type signingKeyID struct {
	secret, date string
}

// NewVerifier returns a verifier for service in region over keys.
func NewVerifier(service, region string, keys Keys) *Verifier {
	return &Verifier{Service: service, Region: region, Keys: keys, Skew: DefaultClockSkew, Now: time.Now, signingKeys: map[signingKeyID][]byte{}}
}

func denied(id, format string, args ...any) error {
	return apierror.New(apierror.Forbidden, id, format, args...)
}

// signature is what a request claims: from its Authorization header or,
// presigned, from its query.
type signature struct {
	accessKey, date, region, service string
	signedHeaders                    []string
	signature                        string
	amzDate                          time.Time
	presigned                        bool
	expires                          time.Duration
}

// ParseAuthorization parses an Authorization header of SigV4:
// "AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request,
// SignedHeaders=<h1;h2>, Signature=<hex>".
func ParseAuthorization(h string) (sig signature, err error) {
	rest, ok := strings.CutPrefix(h, algorithm+" ")
	if !ok {
		return sig, denied(apierror.IDIncompleteSignature, "Authorization header requires the %s algorithm", algorithm)
	}
	var cred, signed string
	seen := map[string]bool{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || seen[k] {
			return sig, denied(apierror.IDIncompleteSignature, "Authorization header is malformed: %q", truncate(part))
		}
		seen[k] = true
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig.signature = v
		default:
			return sig, denied(apierror.IDIncompleteSignature, "Authorization header has an unknown element %q", truncate(k))
		}
	}
	if cred == "" || signed == "" || sig.signature == "" {
		return sig, denied(apierror.IDIncompleteSignature, "Authorization header requires Credential, SignedHeaders and Signature")
	}
	if err := sig.setCredential(cred); err != nil {
		return sig, err
	}
	sig.signedHeaders = strings.Split(signed, ";")
	return sig, sig.check()
}

func (s *signature) setCredential(cred string) error {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != scopeTerminal || parts[0] == "" {
		return denied(apierror.IDIncompleteSignature, "Credential must be <access key>/<date>/<region>/<service>/%s", scopeTerminal)
	}
	s.accessKey, s.date, s.region, s.service = parts[0], parts[1], parts[2], parts[3]
	return nil
}

// check validates the parsed parts' shapes.
func (s *signature) check() error {
	if len(s.signature) != 64 {
		return denied(apierror.IDIncompleteSignature, "Signature must be 64 hexadecimal characters")
	}
	if _, err := hex.DecodeString(s.signature); err != nil {
		return denied(apierror.IDIncompleteSignature, "Signature must be 64 hexadecimal characters")
	}
	if !sort.StringsAreSorted(s.signedHeaders) {
		return denied(apierror.IDIncompleteSignature, "SignedHeaders must be sorted")
	}
	hasHost := false
	for _, h := range s.signedHeaders {
		if h == "" || h != strings.ToLower(h) {
			return denied(apierror.IDIncompleteSignature, "SignedHeaders must be lower-case header names")
		}
		hasHost = hasHost || h == "host"
	}
	if !hasHost {
		return denied(apierror.IDIncompleteSignature, "SignedHeaders must include host")
	}
	return nil
}

// Verify checks the request's signature over body (the request's whole
// body, already read) and returns the caller and the body's data (an
// aws-chunked body decoded, in place: body's bytes are overwritten).
func (v *Verifier) Verify(r *http.Request, body []byte) (Identity, []byte, error) {
	return v.VerifyReading(r, func(BodyRead) ([]byte, error) { return body, nil })
}

// BodyReader reads a request's body for VerifyReading.
type BodyReader func(BodyRead) ([]byte, error)

// BodyRead says what VerifyReading knows of a body it asks to read.
type BodyRead struct {
	// AccessKeyID is the key the request claims to be signed with.
	AccessKeyID string
	// Verified tells whether the signature already checked out (the
	// request declared its payload's hash), or whether the body is read to
	// check it: a reader may hold such unverified bodies to a smaller share
	// of memory, per key.
	Verified bool
	// Chunked tells that the body is aws-chunked, the signed payload
	// STREAMING-AWS4-HMAC-SHA256-PAYLOAD: VerifyReading returns its data
	// decoded, and the body on the wire is larger than the data by its
	// chunk headers.
	Chunked bool
}

func (v *Verifier) VerifyReading(r *http.Request, read BodyReader) (Identity, []byte, error) {
	var sig signature
	var err error
	query := r.URL.Query()
	if query.Get("X-Amz-Algorithm") != "" {
		sig, err = parsePresigned(query)
	} else if h := r.Header.Get("Authorization"); h != "" {
		sig, err = ParseAuthorization(h)
		if err == nil {
			err = sig.setDate(r.Header.Get("X-Amz-Date"))
		}
	} else {
		err = denied(apierror.IDIncompleteSignature, "Missing Authentication Token: sign the request with AWS Signature Version 4")
	}
	if err != nil {
		return Identity{}, nil, err
	}
	if sig.date != sig.amzDate.Format(scopeDate) {
		return Identity{}, nil, denied(apierror.IDSignatureMismatch, "Credential date %s does not match X-Amz-Date %s", sig.date, sig.amzDate.Format(amzDateFormat))
	}
	if sig.service != v.Service {
		return Identity{}, nil, denied(apierror.IDSignatureMismatch, "Credential should be scoped to correct service: '%s'", v.Service)
	}
	if sig.region != v.Region {
		return Identity{}, nil, denied(apierror.IDSignatureMismatch, "Credential should be scoped to a valid region, not '%s'", truncate(sig.region))
	}
	now := v.Now()
	if sig.presigned {
		if now.Before(sig.amzDate.Add(-v.Skew)) || now.After(sig.amzDate.Add(sig.expires)) {
			return Identity{}, nil, denied(apierror.IDSignatureExpired, "Signature expired: the presigned URL was valid from %s for %s", sig.amzDate.Format(amzDateFormat), sig.expires)
		}
	} else if d := now.Sub(sig.amzDate); d > v.Skew || d < -v.Skew {
		return Identity{}, nil, denied(apierror.IDSignatureExpired, "Signature expired: %s is now earlier than %s (%s - %s.)",
			sig.amzDate.Format(amzDateFormat), now.Add(-v.Skew).Format(amzDateFormat), now.Format(amzDateFormat), v.Skew)
	}
	secret, id, ok := v.Keys.Lookup(sig.accessKey)
	if !ok {
		return Identity{}, nil, denied(apierror.IDUnknownAccessKey, "The security token included in the request is invalid.")
	}
	queries, err := canonicalQueries(r.URL.RawQuery, sig.presigned)
	if err != nil {
		return Identity{}, nil, err
	}
	declared, err := declaredPayload(r, query, sig)
	if err != nil {
		return Identity{}, nil, err
	}
	key := v.signingKey(secret, sig.date, sig.region, sig.service)
	scope := strings.Join([]string{sig.date, sig.region, sig.service, scopeTerminal}, "/")
	var body []byte
	payload := declared
	if payload == "" {
		// The signature covers the body's hash: read it first.
		if body, err = read(BodyRead{AccessKeyID: sig.accessKey}); err != nil {
			return Identity{}, nil, err
		}
		sum := sha256.Sum256(body)
		payload = hex.EncodeToString(sum[:])
	}
	seed, err := v.check(r, sig, queries, key, scope, payload)
	if err != nil {
		return Identity{}, nil, err
	}
	if declared == "" {
		return id, body, nil
	}
	if body, err = read(BodyRead{AccessKeyID: sig.accessKey, Verified: true, Chunked: declared == streamingPayload}); err != nil {
		return Identity{}, nil, err
	}
	switch declared {
	case unsignedBody:
	case streamingPayload:
		if body, err = decodeChunked(body, key, sig.amzDate, scope, seed); err != nil {
			return Identity{}, nil, err
		}
		if n := r.Header.Get("X-Amz-Decoded-Content-Length"); n != "" && n != strconv.Itoa(len(body)) {
			return Identity{}, nil, chunkError("X-Amz-Decoded-Content-Length %s is not the data's length %d", truncate(n), len(body))
		}
	default:
		if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != declared {
			return Identity{}, nil, denied(apierror.IDSignatureMismatch, "The provided %s header does not match what was computed.", contentSHA256)
		}
	}
	return id, body, nil
}

// check compares the request's signature with the one key makes over the
// request and payload, and returns it (the seed of an aws-chunked body).
// Every canonical query string a specification-following signer may have
// signed (queries, see canonicalQueries) is tried.
func (v *Verifier) check(r *http.Request, sig signature, queries []string, key []byte, scope, payload string) (string, error) {
	headers, err := canonicalHeaders(r, sig)
	if err != nil {
		return "", err
	}
	for _, query := range queries {
		canonical := r.Method + "\n" + httpbinding.EscapePath(r.URL.EscapedPath(), false) + "\n" + query + "\n" + headers + "\n" + payload
		h := sha256.Sum256([]byte(canonical))
		toSign := algorithm + "\n" + sig.amzDate.Format(amzDateFormat) + "\n" + scope + "\n" + hex.EncodeToString(h[:])
		want := hex.EncodeToString(hmacSHA256(key, toSign))
		if hmac.Equal([]byte(want), []byte(sig.signature)) {
			return want, nil
		}
	}
	return "", denied(apierror.IDSignatureMismatch, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
}

func (s *signature) setDate(amzDate string) error {
	if amzDate == "" {
		return denied(apierror.IDIncompleteSignature, "X-Amz-Date is required")
	}
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return denied(apierror.IDIncompleteSignature, "X-Amz-Date must be in the form %s", amzDateFormat)
	}
	s.amzDate = t
	return nil
}

// parsePresigned reads the signature of a presigned URL from its query.
func parsePresigned(q url.Values) (signature, error) {
	sig := signature{presigned: true, signature: q.Get("X-Amz-Signature")}
	if q.Get("X-Amz-Algorithm") != algorithm {
		return sig, denied(apierror.IDIncompleteSignature, "X-Amz-Algorithm must be %s", algorithm)
	}
	if err := sig.setCredential(q.Get("X-Amz-Credential")); err != nil {
		return sig, err
	}
	if err := sig.setDate(q.Get("X-Amz-Date")); err != nil {
		return sig, err
	}
	secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || secs <= 0 || time.Duration(secs)*time.Second > maxPresignLife {
		return sig, denied(apierror.IDIncompleteSignature, "X-Amz-Expires must be between 1 and %d seconds", int(maxPresignLife.Seconds()))
	}
	sig.expires = time.Duration(secs) * time.Second
	sig.signedHeaders = strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	return sig, sig.check()
}

// declaredPayload is the payload hash the client declared and signed: the
// X-Amz-Content-Sha256 header (which must then be a signed header) or, in a
// presigned URL, its query parameter, which may be UNSIGNED-PAYLOAD or, for
// a signed request, STREAMING-AWS4-HMAC-SHA256-PAYLOAD. A presigned URL
// without one covers no payload; "" means the body's hash must be computed.
func declaredPayload(r *http.Request, q url.Values, sig signature) (string, error) {
	declared := r.Header.Get(contentSHA256)
	if sig.presigned {
		declared = q.Get(contentSHA256)
		switch declared {
		case "":
			return unsignedBody, nil
		case streamingPayload:
			return "", denied(apierror.IDIncompleteSignature, "a presigned URL cannot carry an aws-chunked payload")
		}
	} else if declared != "" && !contains(sig.signedHeaders, strings.ToLower(contentSHA256)) {
		return "", denied(apierror.IDIncompleteSignature, "%s must be a signed header", contentSHA256)
	}
	switch {
	case declared == "", declared == unsignedBody, declared == streamingPayload:
		return declared, nil
	case len(declared) == 64 && strings.ToLower(declared) == declared && isHex(declared):
		return declared, nil
	default:
		return "", denied(apierror.IDIncompleteSignature, "%s must be the payload's hex SHA-256, %s or %s", contentSHA256, unsignedBody, streamingPayload)
	}
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// canonicalHeaders is the canonical headers part of SigV4's canonical
// request, with the signed headers' list after it.
func canonicalHeaders(r *http.Request, sig signature) (string, error) {
	var b strings.Builder
	for _, h := range sig.signedHeaders {
		var value string
		switch h {
		case "host":
			value = r.Host
		case "content-length":
			value = strconv.FormatInt(r.ContentLength, 10)
		default:
			values, ok := r.Header[http.CanonicalHeaderKey(h)]
			if !ok {
				return "", denied(apierror.IDIncompleteSignature, "signed header %s is missing from the request", truncate(h))
			}
			cleaned := make([]string, len(values))
			for i, v := range values {
				cleaned[i] = strings.Join(strings.Fields(v), " ")
			}
			value = strings.Join(cleaned, ",")
		}
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(value)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(sig.signedHeaders, ";"))
	return b.String(), nil
}

// canonicalQueries returns the canonical query strings a signer following
// the specification may have signed for the query as received, without the
// signature of a presigned URL:
//
//   - AWS's: every name and value decoded (a "+" is a space, as every
//     server decodes it), then encoded with only RFC 3986's unreserved
//     characters left as they are, sorted by encoded name and then value.
//     The AWS SDKs sign this whatever the client sends, and so does
//     botocore for parameters it encodes itself.
//   - The query as sent, its pairs sorted the same way: botocore signs a
//     query that came in the URL as it finds it ("?match[]=up" literally),
//     assuming it is already encoded.
//
// Both hold every pair of the query as received, so no pair can be added to
// a signed request. A pair that does not decode (a "%" not followed by two
// hexadecimal digits) is refused: its meaning depends on the parser, so no
// signature can be said to cover it.
func canonicalQueries(raw string, presigned bool) ([]string, error) {
	type pair struct{ k, v string }
	var decoded, asSent []pair
	signatures := 0
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		ku, err1 := url.QueryUnescape(k)
		vu, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, apierror.New(apierror.BadData, apierror.IDMalformedQueryString,
				"the query string is malformed: %q does not decode (a %% must start a %%XX escape)", truncate(part))
		}
		if presigned && ku == "X-Amz-Signature" {
			if signatures++; signatures > 1 {
				return nil, apierror.New(apierror.BadData, apierror.IDMalformedQueryString, "the query string is malformed: X-Amz-Signature is given more than once")
			}
			continue
		}
		asSent = append(asSent, pair{k, v})
		decoded = append(decoded, pair{uriEncode(ku), uriEncode(vu)})
	}
	join := func(pairs []pair) string {
		sort.Slice(pairs, func(i, j int) bool {
			if pairs[i].k != pairs[j].k {
				return pairs[i].k < pairs[j].k
			}
			return pairs[i].v < pairs[j].v
		})
		var b strings.Builder
		for i, p := range pairs {
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString(p.k)
			b.WriteByte('=')
			b.WriteString(p.v)
		}
		return b.String()
	}
	spec, sent := join(decoded), join(asSent)
	if sent == spec {
		return []string{spec}, nil
	}
	return []string{spec, sent}, nil
}

// uriEncode percent-encodes every byte of s but RFC 3986's unreserved
// characters (A-Z a-z 0-9 - . _ ~), with upper-case hexadecimal digits.
func uriEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// signingKey derives (and caches, per secret and day) the key that signs
// requests of one day.
func (v *Verifier) signingKey(secret, date, region, service string) []byte {
	id := signingKeyID{secret: secret + "\x00" + region + "\x00" + service, date: date}
	v.mu.Lock()
	defer v.mu.Unlock()
	if k, ok := v.signingKeys[id]; ok {
		return k
	}
	if len(v.signingKeys) > 10_000 {
		clear(v.signingKeys)
	}
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, scopeTerminal)
	v.signingKeys[id] = k
	return k
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// truncate bounds what a hostile value adds to an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
