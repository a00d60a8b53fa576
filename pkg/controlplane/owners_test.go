package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc"

	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// slowUploads makes every upload take a while, as object storage does, which
// widens the window between reading an account's index and writing it.
type slowUploads struct{ objstore.Bucket }

func (b slowUploads) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	time.Sleep(5 * time.Millisecond)
	return b.Bucket.Upload(ctx, name, r, opts...)
}

// ownedBy names one replica the owner of every account.
type ownedBy struct {
	self  int
	owner int
	peers []*Handler
}

func (o *ownedBy) Owner(string) (http.Handler, error) {
	if o.self == o.owner {
		return nil, nil
	}
	// Forward as the internal port would: the owner handles it as its own.
	owner := o.peers[o.owner]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		owner.Create(w, r.WithContext(context.WithValue(r.Context(), forwardedKey{}, true)))
	}), nil
}

// TestOneWriterPerAccountAcrossReplicas: two replicas share a bucket; with
// creates handed to the account's owner the quota holds, without it the
// replicas race each other past it.
func TestOneWriterPerAccountAcrossReplicas(t *testing.T) {
	for _, tc := range []struct {
		name    string
		forward bool
	}{{"forwarded to the owner", true}, {"each replica writes", false}} {
		t.Run(tc.name, func(t *testing.T) {
			bkt := slowUploads{objstore.NewInMemBucket()}
			cfg := Config{Region: "eu-west-1", MaxWorkspacesPerAccount: 2, StatusCacheTTL: time.Second}
			var peers []*Handler
			for i := 0; i < 2; i++ {
				var owners Owners
				if tc.forward {
					owners = &ownedBy{self: i, owner: 0}
				}
				peers = append(peers, NewHandler(cfg, NewStore(cfg, bkt), owners, 0))
			}
			for _, h := range peers {
				if o, ok := h.owners.(*ownedBy); ok {
					o.peers = peers
				}
			}
			var mu sync.Mutex
			created := 0
			var wg sync.WaitGroup
			for i := 0; i < 20; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					body, _ := json.Marshal(map[string]string{"alias": "a"})
					r := httptest.NewRequest(http.MethodPost, "/workspaces", bytes.NewReader(body))
					r = r.WithContext(tenant.WithAccount(r.Context(), "111111111111"))
					w := httptest.NewRecorder()
					peers[i%2].Create(w, r)
					if w.Code == http.StatusAccepted {
						mu.Lock()
						created++
						mu.Unlock()
					}
				}(i)
			}
			wg.Wait()
			if tc.forward {
				require.Equal(t, 2, created)
			} else {
				require.Greater(t, created, 2, "without one writer the replicas should race past the quota")
			}
		})
	}
}

// TestBodiesAreBoundedBeforeForwarding: a body over the limit is refused
// with 413, by the owner and by a replica that would forward it, without
// reading it whole.
func TestBodiesAreBoundedBeforeForwarding(t *testing.T) {
	cfg := Config{Region: "eu-west-1", MaxWorkspacesPerAccount: 2, StatusCacheTTL: time.Second}
	owner := NewHandler(cfg, NewStore(cfg, objstore.NewInMemBucket()), nil, 0)
	forwarding := NewHandler(cfg, NewStore(cfg, objstore.NewInMemBucket()), &ownedBy{self: 1, owner: 0, peers: []*Handler{owner}}, 0)
	for name, h := range map[string]*Handler{"owner": owner, "forwarding replica": forwarding} {
		t.Run(name, func(t *testing.T) {
			big := bytes.NewReader(append([]byte(`{"alias":"`), bytes.Repeat([]byte("a"), maxControlBody+10)...))
			r := httptest.NewRequest(http.MethodPost, "/workspaces", big)
			r = r.WithContext(tenant.WithAccount(r.Context(), "111111111111"))
			w := httptest.NewRecorder()
			h.Create(w, r)
			require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
			require.Equal(t, "ValidationException", w.Header().Get("x-amzn-ErrorType"))
		})
	}
}

type recordingClient struct{ called bool }

func (c *recordingClient) Handle(context.Context, *httpgrpc.HTTPRequest, ...grpc.CallOption) (*httpgrpc.HTTPResponse, error) {
	c.called = true
	return &httpgrpc.HTTPResponse{Code: http.StatusAccepted}, nil
}

// TestForwarderRefusesOversizedBodies: the replica that forwards a write
// never reads more than the limit of its body.
func TestForwarderRefusesOversizedBodies(t *testing.T) {
	c := &recordingClient{}
	f := &forwarder{client: c, account: "111111111111"}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/workspaces", bytes.NewReader(make([]byte, maxControlBody+1)))
	r.Body = http.MaxBytesReader(w, r.Body, maxControlBody) // as handOver bounds it
	f.ServeHTTP(w, r)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
	require.False(t, c.called)

	w = httptest.NewRecorder()
	r = httptest.NewRequest(http.MethodPost, "/workspaces", bytes.NewReader([]byte(`{}`)))
	f.ServeHTTP(w, r)
	require.Equal(t, http.StatusAccepted, w.Code)
	require.True(t, c.called)
}
