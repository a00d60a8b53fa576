package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-metrics/vigil/pkg/auth"
	"github.com/vigil-metrics/vigil/pkg/inflight"
)

type benchKeys struct{ id auth.Identity }

func (k benchKeys) Lookup(string) (string, auth.Identity, bool) { return "writer-secret", k.id, true }

// BenchmarkRemoteWriteAuth measures what the router adds to one remote-write
// request of a typical size (60 KB, 2000 samples snappy-compressed), with
// -auth.mode=none and with SigV4 verification plus policy evaluation, the
// handler draining the body as the distributor does. Compare the difference
// with the push's own cost (BenchmarkMonolithRemoteWrite's ns/op).
func BenchmarkRemoteWriteAuth(b *testing.B) {
	body := make([]byte, 60<<10)
	_, _ = rand.Read(body)
	sum := sha256.Sum256(body)
	ws := fakeWorkspaces{"ws-1": {Account: "111122223333", ARN: "arn:aws:aps:us-east-1:111122223333:workspace/ws-1", Active: true}}
	writeOnly, err := auth.ManagedPolicy("AmazonPrometheusRemoteWriteAccess")
	if err != nil {
		b.Fatal(err)
	}
	keys := benchKeys{auth.Identity{Account: "111122223333", User: "writer", AccessKeyID: "AKIAEXAMPLEWRITER", Policies: []*auth.Policy{writeOnly}}}
	drain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
	for _, mode := range []string{AuthNone, AuthSigV4} {
		b.Run("auth="+mode, func(b *testing.B) {
			cfg := Config{AuthMode: mode, AnonymousAccount: "111122223333", ControlPlaneRate: 10}
			a, err := New(cfg, "us-east-1", ws, keys, nil, inflight.NewBudget(1<<30), prometheus.NewRegistry(), log.NewNopLogger())
			if err != nil {
				b.Fatal(err)
			}
			a.pushLimit = 1 << 20
			a.Bind(auth.OpRemoteWrite, drain) // the front door's share only
			req := httptest.NewRequest(http.MethodPost, "http://h/workspaces/ws-1/api/v1/remote_write", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-protobuf")
			req.Header.Set("Content-Encoding", "snappy")
			if mode == AuthSigV4 {
				creds := aws.Credentials{AccessKeyID: "AKIAEXAMPLEWRITER", SecretAccessKey: "writer-secret"}
				if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "aps", "us-east-1", time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			rec := httptest.NewRecorder()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := req.Clone(context.Background())
				r.Body = io.NopCloser(bytes.NewReader(body))
				a.ServeHTTP(rec, r)
				if rec.Code != http.StatusNoContent {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
