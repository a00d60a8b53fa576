package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/golang/snappy"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/vigil"
)

// startMonolith starts a monolithic Vigil on random loopback ports with its
// state under dataDir, and stops it when the test ends (unless stopped before).
func startMonolith(t *testing.T, dataDir string, extra ...string) *vigil.Vigil {
	t.Helper()
	args := append([]string{
		"-data-dir=" + dataDir,
		"-server.http-listen-address=127.0.0.1", "-server.http-listen-port=0",
		"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=0",
		"-memberlist.bind-addr=127.0.0.1", "-memberlist.bind-port=0",
		"-admin.listen-port=0",
		"-ingester.ring.instance-addr=127.0.0.1", "-ingester.ring.instance-id=ingester-1",
		"-controlplane.ring.instance-addr=127.0.0.1", "-store-gateway.ring.instance-addr=127.0.0.1", "-compactor.ring.instance-addr=127.0.0.1",
		"-distributor.ring.instance-addr=127.0.0.1", "-ruler.ring.instance-addr=127.0.0.1", "-alertmanager.ring.instance-addr=127.0.0.1",
		"-log.level=warn",
	}, extra...)
	logger := level.NewFilter(log.NewLogfmtLogger(log.NewSyncWriter(os.Stderr)), level.AllowError())
	cfg, err := vigil.LoadConfig(args, io.Discard)
	require.NoError(t, err)
	v, err := vigil.New(*cfg, prometheus.NewRegistry(), logger)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, v.Start(ctx))
	t.Cleanup(func() { _ = v.Stop() })
	waitReady(t, v.BaseURL())
	return v
}

func waitReady(t *testing.T, base string) { waitOK(t, base+"/ready") }

// waitOK waits for url to answer 200.
func waitOK(t *testing.T, url string) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "%s never answered 200", url)
}

// createNamespace stores a rule groups namespace through the API (no
// signature: the monolith's default auth mode).
func createNamespace(t *testing.T, base, ws, name, rules string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"name": name, "data": []byte(rules)})
	require.NoError(t, err)
	resp, err := http.Post(workspaceURL(base, ws)+"/rulegroupsnamespaces", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
}

// createWorkspace calls CreateWorkspace and returns the new workspace's ID.
func createWorkspace(t *testing.T, base, alias string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"alias": alias})
	resp, err := http.Post(base+"/workspaces", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	var out struct {
		WorkspaceID string `json:"workspaceId"`
		Status      struct {
			StatusCode string `json:"statusCode"`
		} `json:"status"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Regexp(t, `^ws-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, out.WorkspaceID)
	require.Equal(t, "ACTIVE", out.Status.StatusCode)
	return out.WorkspaceID
}

// remoteWriter returns Prometheus's own remote-write client for url.
func remoteWriter(t *testing.T, rawURL string) remote.WriteClient {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	c, err := remote.NewWriteClient("test", &remote.ClientConfig{
		URL:     &config_util.URL{URL: u},
		Timeout: model.Duration(10 * time.Second),
	})
	require.NoError(t, err)
	return c
}

// encode marshals and snappy-compresses a remote-write request.
func encode(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

// promClient returns a Prometheus HTTP API client for a workspace endpoint.
func promClient(t *testing.T, endpoint string) promv1.API {
	t.Helper()
	c, err := newPromAPI(endpoint)
	require.NoError(t, err)
	return c
}

// newPromAPI is promClient for goroutines that must not fail the test.
func newPromAPI(endpoint string) (promv1.API, error) {
	c, err := promapi.NewClient(promapi.Config{Address: endpoint})
	if err != nil {
		return nil, err
	}
	return promv1.NewAPI(c), nil
}

func series(name string, extra map[string]string, samples ...prompb.Sample) prompb.TimeSeries {
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for k, v := range extra {
		ls = append(ls, prompb.Label{Name: k, Value: v})
	}
	// Senders such as Prometheus send labels sorted by name.
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	return prompb.TimeSeries{Labels: ls, Samples: samples}
}

func workspaceURL(base, id string) string { return fmt.Sprintf("%s/workspaces/%s", base, id) }

// startWithOverrides starts a monolith that reloads the (empty) overrides
// file it returns every 100 ms.
func startWithOverrides(t *testing.T) (*vigil.Vigil, string) {
	t.Helper()
	dir := t.TempDir()
	overrides := filepath.Join(dir, "overrides.yaml")
	require.NoError(t, os.WriteFile(overrides, nil, 0o644))
	return startMonolith(t, filepath.Join(dir, "data"), "-limits.overrides-file="+overrides, "-limits.overrides-reload-period=100ms"), overrides
}

// freePort returns a loopback port that was free a moment ago, below
// Linux's ephemeral range (32768 and up), so that no outgoing connection
// takes it. Another process (another test run) may still bind it before the
// program that is told it does: start such programs with retryOnPortClash.
// Vigil's own processes take port 0 and report what they bound.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 1000; i++ {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port between 20000 and 32000")
	return 0
}
