package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/vigil"
)

// startAPIReplicas starts n control-plane replicas (-target=api) in this
// process, sharing one bucket and one memberlist cluster: each gossips on a
// port the kernel chose and joins the replicas started before it.
func startAPIReplicas(t *testing.T, n int, extra ...string) []*vigil.Vigil {
	t.Helper()
	root := t.TempDir()
	var out []*vigil.Vigil
	var gossip []string
	for i := 0; i < n; i++ {
		args := []string{
			"-target=api", "-storage.filesystem.dir=" + filepath.Join(root, "bucket"),
			"-controlplane.ring.instance-id=api-" + fmt.Sprint(i), "-controlplane.ring.instance-addr=127.0.0.1",
		}
		if len(gossip) > 0 {
			args = append(args, "-memberlist.join="+strings.Join(gossip, ","))
		}
		v := startMonolith(t, filepath.Join(root, fmt.Sprint(i)), append(args, extra...)...)
		require.NotEmpty(t, v.GossipAddr())
		gossip = append(gossip, v.GossipAddr())
		out = append(out, v)
	}
	for _, v := range out {
		require.Eventually(t, func() bool {
			resp, err := http.Get(v.AdminURL() + "/controlplane/ring")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return strings.Count(string(b), "ACTIVE") >= n
		}, 30*time.Second, 50*time.Millisecond, "the replicas never saw each other")
	}
	return out
}

// forwardedRequests counts the control-plane writes the replicas handed
// to the owner of their account.
func forwardedRequests(t *testing.T, replicas []*vigil.Vigil) int {
	t.Helper()
	forwarded := 0
	for _, r := range replicas {
		resp, err := http.Get(r.AdminURL() + "/metrics")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if n, ok := strings.CutPrefix(line, "vigil_controlplane_forwarded_requests_total "); ok {
				var v int
				_, _ = fmt.Sscan(n, &v)
				forwarded += v
			}
		}
	}
	return forwarded
}

func createWith(base string, body map[string]any) (int, map[string]any) {
	b, _ := json.Marshal(body)
	resp, err := http.Post(base+"/workspaces", "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, map[string]any{"message": err.Error()}
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestControlPlaneReplicasHaveOneWriterPerAccount: creates for one account
// arrive at two replicas at once; the account's owner serialises them, so
// the quota holds and a retried clientToken returns the same workspace
// whichever replica it reaches.
func TestControlPlaneReplicasHaveOneWriterPerAccount(t *testing.T) {
	// Twenty creates at once: more than the default rate of one account.
	replicas := startAPIReplicas(t, 2, "-controlplane.max-workspaces-per-account=2", "-auth.control-plane-rate-limit=1000")
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code, body := createWith(replicas[i%2].BaseURL(), map[string]any{"alias": fmt.Sprint(i)})
			mu.Lock()
			codes[code]++
			mu.Unlock()
			if code != http.StatusAccepted && code != http.StatusPaymentRequired {
				t.Errorf("create: %d %v", code, body)
			}
		}(i)
	}
	wg.Wait()
	require.Equal(t, map[int]int{http.StatusAccepted: 2, http.StatusPaymentRequired: 18}, codes)
	require.Equal(t, 10, forwardedRequests(t, replicas), "the replica not owning the account hands its creates over")
	for _, r := range replicas {
		resp, err := http.Get(r.BaseURL() + "/workspaces")
		require.NoError(t, err)
		var list struct {
			Workspaces []any `json:"workspaces"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
		resp.Body.Close()
		require.Len(t, list.Workspaces, 2)
	}
}

func TestClientTokenRetryOnAnotherReplica(t *testing.T) {
	replicas := startAPIReplicas(t, 2)
	req := map[string]any{"alias": "prod", "clientToken": "retry-me"}
	code, first := createWith(replicas[0].BaseURL(), req)
	require.Equal(t, http.StatusAccepted, code, first)
	code, again := createWith(replicas[1].BaseURL(), req)
	require.Equal(t, http.StatusAccepted, code, again)
	require.Equal(t, first["workspaceId"], again["workspaceId"])
	code, conflict := createWith(replicas[1].BaseURL(), map[string]any{"alias": "other", "clientToken": "retry-me"})
	require.Equal(t, http.StatusConflict, code, conflict)
}
