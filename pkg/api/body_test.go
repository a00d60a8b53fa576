package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
	"github.com/vigil-metrics/vigil/pkg/inflight"
)

// signedAPI is a SigV4 front door whose remote-write route drains the body,
// with a push limit of 64 KB.
func signedAPI(t *testing.T, budget *inflight.Budget) *API {
	t.Helper()
	ws := fakeWorkspaces{"ws-1": {Account: "111122223333", ARN: "arn:aws:aps:us-east-1:111122223333:workspace/ws-1", Active: true}}
	full, err := auth.ManagedPolicy(auth.FullAccess)
	require.NoError(t, err)
	keys := benchKeys{auth.Identity{Account: "111122223333", User: "writer", AccessKeyID: "AKIAEXAMPLEWRITER", Policies: []*auth.Policy{full}}}
	cfg := Config{AuthMode: AuthSigV4, AnonymousAccount: "111122223333", ControlPlaneRate: 10}
	a, err := New(cfg, "us-east-1", ws, keys, nil, budget, prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	// The route drains the body rather than decoding it: these tests are
	// about reading it.
	a.pushLimit = 64 << 10
	a.Bind(auth.OpRemoteWrite, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	a.Bind("QueryMetrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	return a
}

// signedPush returns a remote-write request signed over body; declare puts
// the payload's hash in X-Amz-Content-Sha256.
func signedPush(t *testing.T, body []byte, secret string, declare bool) *http.Request {
	t.Helper()
	return signedPushAs(t, "AKIAEXAMPLEWRITER", body, secret, declare)
}

// signedPushAs is signedPush with the access key keyID.
func signedPushAs(t *testing.T, keyID string, body []byte, secret string, declare bool) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://h/workspaces/ws-1/api/v1/remote_write", bytes.NewReader(body))
	sum := sha256.Sum256(body)
	if declare {
		r.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
	}
	creds := aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret}
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "aps", "us-east-1", time.Now()))
	return r
}

// stalledBody is a body that does not arrive (a client that sends headers
// only) until the test ends, and remembers being read.
type stalledBody struct {
	read, end chan struct{}
	first     int // bytes sent before the stall
	firstCap  int // the capacity of the first buffer read into
	reads     int
}

func stalled(t *testing.T) *stalledBody {
	s := &stalledBody{read: make(chan struct{}, 1), end: make(chan struct{})}
	t.Cleanup(func() { close(s.end) })
	return s
}

func (s *stalledBody) Read(p []byte) (int, error) {
	if s.reads++; s.reads == 1 {
		s.firstCap = cap(p)
	}
	if s.first > 0 {
		n := min(len(p), s.first) // what arrives before the stall
		s.first -= n
		return n, nil
	}
	select {
	case s.read <- struct{}{}:
	default:
	}
	<-s.end
	return 0, io.ErrUnexpectedEOF
}
func (*stalledBody) Close() error { return nil }

func TestSignedBodies(t *testing.T) {
	t.Run("a body over the route's limit is refused before it is read", func(t *testing.T) {
		budget := inflight.NewBudget(1 << 30)
		a := signedAPI(t, budget)
		r := signedPush(t, make([]byte, 100), "writer-secret", false)
		slow := stalled(t)
		r.Body, r.ContentLength = slow, 16<<20
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, r)
		require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
		require.Contains(t, rec.Body.String(), "(err-vigil-request-too-large)")
		require.Len(t, slow.read, 0, "nothing was read")
		require.Zero(t, budget.Used())
	})
	t.Run("the limit holds without a Content-Length", func(t *testing.T) {
		budget := inflight.NewBudget(1 << 30)
		a := signedAPI(t, budget)
		r := signedPush(t, make([]byte, 200<<10), "writer-secret", false)
		r.ContentLength = -1
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, r)
		require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
		require.Zero(t, budget.Used())
	})
	t.Run("other routes read at most AMP's 1 MB", func(t *testing.T) {
		a := signedAPI(t, inflight.NewBudget(1<<30))
		r := httptest.NewRequest(http.MethodPost, "http://h/workspaces/ws-1/api/v1/query", strings.NewReader("query=up"))
		r.ContentLength = 2 << 20
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, r)
		// Unsigned: refused before any read, whatever its length.
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.Equal(t, defaultBodyLimit, a.bodyLimit(a.routeOf(r)))
		require.Equal(t, 64<<10, a.bodyLimit(a.routeOf(signedPush(t, nil, "writer-secret", false))))
	})
	t.Run("a wrong signature over a declared hash is refused before the body is read", func(t *testing.T) {
		budget := inflight.NewBudget(1 << 30)
		a := signedAPI(t, budget)
		r := signedPush(t, make([]byte, 1000), "not-the-secret", true)
		slow := stalled(t)
		r.Body = slow
		done := make(chan int)
		go func() {
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, r)
			done <- rec.Code
		}()
		select {
		case code := <-done:
			require.Equal(t, http.StatusForbidden, code)
		case <-time.After(10 * time.Second):
			t.Fatal("the front door waited for the body of a request whose signature is wrong")
		}
		require.Len(t, slow.read, 0)
	})
	t.Run("a full budget answers 503, and a request finished gives its memory back", func(t *testing.T) {
		budget := inflight.NewBudget(20 << 10)
		a := signedAPI(t, budget)
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, signedPush(t, make([]byte, 10<<10), "writer-secret", false))
		require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
		require.Zero(t, budget.Used(), "the body's memory is given back")

		require.True(t, budget.Take(10<<10)) // other requests in flight
		rec = httptest.NewRecorder()
		a.ServeHTTP(rec, signedPush(t, make([]byte, 30<<10), "writer-secret", false))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Contains(t, rec.Body.String(), "exceeded the allowed size (limit: 20480 bytes, -distributor.instance-limits.max-inflight-push-requests-bytes)")
		require.Contains(t, rec.Body.String(), "(err-vigil-"+apierror.IDInflightBodyBytes+")")
		require.Equal(t, int64(10<<10), budget.Used(), "the refused request holds nothing")
	})
	t.Run("a stalled body holds only its first buffer", func(t *testing.T) {
		budget := inflight.NewBudget(1 << 30)
		a := signedAPI(t, budget)
		r := signedPush(t, make([]byte, 100), "writer-secret", false)
		slow := stalled(t)
		r.Body, r.ContentLength = slow, 60<<10
		go a.ServeHTTP(httptest.NewRecorder(), r)
		<-slow.read
		require.Equal(t, int64(firstRead), budget.Used(), "not the declared length")
		require.Equal(t, int64(firstRead), a.bodies.held.Load())
	})
	t.Run("a pooled buffer is taken as bytes arrive", func(t *testing.T) {
		budget := inflight.NewBudget(1 << 30)
		a := signedAPI(t, budget)
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, signedPush(t, make([]byte, 60<<10), "writer-secret", false))
		require.Equal(t, http.StatusNoContent, rec.Code) // leaves a 64 KB buffer in the pool
		r := signedPush(t, make([]byte, 100), "writer-secret", false)
		slow := stalled(t)
		r.Body, r.ContentLength = slow, 60<<10
		go a.ServeHTTP(httptest.NewRecorder(), r)
		<-slow.read
		require.Equal(t, 64<<10, slow.firstCap, "the pooled buffer is reused")
		require.Equal(t, int64(firstRead), budget.Used(), "but counted as it fills, not at its capacity")
	})
	t.Run("one key's unverified bodies cannot take the budget from the others", func(t *testing.T) {
		budget := inflight.NewBudget(1 << 20)
		a := signedAPI(t, budget)
		// Attackers who know a key ID but not its secret send 40 KB of
		// each body, with a made-up signature, and stall: each holds 64 KB,
		// until the key's eighth (128 KB) is held.
		for range 4 {
			attack(t, a, "AKIAKNOWNTOATTACKER", 40<<10)
		}
		require.Equal(t, int64(128<<10), budget.Used(), "an eighth of the budget for the key")

		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, signedPushAs(t, "AKIAHONESTWRITER", make([]byte, 60<<10), "writer-secret", false))
		require.Equal(t, http.StatusNoContent, rec.Code, "another key's honest push: %s", rec.Body.String())

		rec = httptest.NewRecorder()
		a.ServeHTTP(rec, signedPushAs(t, "AKIAKNOWNTOATTACKER", make([]byte, 60<<10), "writer-secret", false))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, "the key's own unsigned-payload pushes wait with the attackers")
		require.Contains(t, rec.Body.String(), "for this access key, read before their signatures could be checked")

		rec = httptest.NewRecorder()
		a.ServeHTTP(rec, signedPushAs(t, "AKIAKNOWNTOATTACKER", make([]byte, 60<<10), "writer-secret", true))
		require.Equal(t, http.StatusNoContent, rec.Code, "a push that declares its payload's hash is verified first: %s", rec.Body.String())
	})
	t.Run("many keys' unverified bodies hold at most half of the budget", func(t *testing.T) {
		budget := inflight.NewBudget(1 << 20)
		a := signedAPI(t, budget)
		for k := range 8 {
			for range 2 {
				attack(t, a, fmt.Sprintf("AKIAKNOWNTOATTACK%d", k), 40<<10)
			}
		}
		require.Equal(t, int64(512<<10), budget.Used(), "half of the budget for the unverified bodies of every key")

		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, signedPushAs(t, "AKIAHONESTWRITER", make([]byte, 60<<10), "writer-secret", true))
		require.Equal(t, http.StatusNoContent, rec.Code, "a push that declares its payload's hash: %s", rec.Body.String())
		rec = httptest.NewRecorder()
		a.ServeHTTP(rec, signedPushAs(t, "AKIAHONESTWRITER", make([]byte, 60<<10), "writer-secret", false))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, "unsigned payloads wait for the unverified half")
		require.Contains(t, rec.Body.String(), "half of -distributor.instance-limits.max-inflight-push-requests-bytes")
	})
}

// attack sends a remote write signed with a made-up signature under keyID,
// whose body stalls after sent bytes, and returns once the front door waits
// for the rest or has answered.
func attack(t *testing.T, a *API, keyID string, sent int) {
	t.Helper()
	r := signedPushAs(t, keyID, make([]byte, 100), "not-the-secret", false)
	slow := stalled(t)
	slow.first = sent
	r.Body, r.ContentLength = slow, 60<<10
	answered := make(chan struct{})
	go func() {
		a.ServeHTTP(httptest.NewRecorder(), r)
		close(answered)
	}()
	select {
	case <-slow.read:
	case <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the front door neither waited for the body nor answered")
	}
}
