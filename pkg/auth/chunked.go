package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

// Chunked (aws-chunked) bodies: X-Amz-Content-Sha256 is
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD and the body a series of
// "<hex size>;chunk-signature=<sig>\r\n<data>\r\n" ending with a chunk of size
// 0, each chunk signed over the previous chunk's signature (the first over
// the request's).
const (
	streamingPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	chunkAlgorithm   = "AWS4-HMAC-SHA256-PAYLOAD"
	emptySHA256      = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	maxChunks        = 1 << 16
)

func chunkError(format string, args ...any) error {
	return denied(apierror.IDSignatureMismatch, "aws-chunked body: "+format, args...)
}

// decodeChunked verifies the chunk signatures of an aws-chunked body and
// returns its data, decoded in place: body's bytes are overwritten (the data
// of each chunk moves towards the start, never past what is still to read).
// seed is the request's signature.
func decodeChunked(body []byte, key []byte, amzDate time.Time, scope, seed string) ([]byte, error) {
	out := body[:0]
	prev := seed
	for n := 0; ; n++ {
		if n >= maxChunks {
			return nil, chunkError("more than %d chunks", maxChunks)
		}
		line, rest, ok := bytes.Cut(body, []byte("\r\n"))
		if !ok {
			return nil, chunkError("a chunk header is not terminated")
		}
		sizeHex, sigPart, ok := bytes.Cut(line, []byte(";chunk-signature="))
		if !ok || len(sizeHex) == 0 || len(sizeHex) > 16 {
			return nil, chunkError("a chunk header is malformed")
		}
		size, err := strconv.ParseUint(string(sizeHex), 16, 63)
		if err != nil || size > uint64(len(rest)) {
			return nil, chunkError("a chunk size is malformed or larger than the body")
		}
		data := rest[:size]
		sum := sha256.Sum256(data)
		toSign := chunkAlgorithm + "\n" + amzDate.Format(amzDateFormat) + "\n" + scope + "\n" + prev + "\n" + emptySHA256 + "\n" + hex.EncodeToString(sum[:])
		want := hex.EncodeToString(hmacSHA256(key, toSign))
		if !hmac.Equal([]byte(want), sigPart) {
			return nil, chunkError("the signature of chunk %d does not match", n)
		}
		prev = want
		out = append(out, data...)
		rest = rest[size:]
		if !bytes.HasPrefix(rest, []byte("\r\n")) {
			return nil, chunkError("chunk %d is not terminated", n)
		}
		body = rest[2:]
		if size == 0 {
			if len(body) != 0 {
				return nil, chunkError("data after the final chunk")
			}
			return out, nil
		}
	}
}
